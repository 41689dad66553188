import { join, resolve } from 'node:path';
import {
  createRandom,
  initBackend,
  MrlError,
  resolveNesting,
  writeFileAtomically,
  type Encoder,
  type OptimizerConfig,
  type RunContext,
  type RunReport,
  type TrainEvent,
} from '@mrl/core';
import { fitAlign } from '@mrl/align';
import { fitText, TEXT_TASKS, type TextTask } from '@mrl/text';
import { fitVision, parseCorruptions, VISION_BASELINES, type VisionBaseline } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import { defineMrlCommand } from '../command.js';
import { BACKEND_FLAGS, COMMON_FLAGS, DATA_FLAGS, RUN_DIR_FLAG, TRAIN_FLAGS, TRUST_FLAGS } from '../flags.js';
import { createProgressReporter } from '../progress.js';
import { buildRegistry, findEncoder } from '../registry.js';
import type { RunConfig } from '../run-folder.js';
import { displayPath } from '../run-folder.js';
import {
  checkFitFlags,
  fromCheckpointStep,
  prepareRunFolder,
  requireEarlierRun,
  trustedRunFlags,
} from '../run-guard.js';
import { onStopSignals } from '../signals.js';

const MODALITY_DEFAULTS = {
  vision: { model: 'mlp', data: 'fashion-mnist' },
  text: { model: 'bert-tiny', data: 'fashion-mnist' },
  align: { model: 'align-tiny', data: 'openclipart' },
} as const;

const FLAGS = { ...TRAIN_FLAGS, ...DATA_FLAGS, ...RUN_DIR_FLAG, ...TRUST_FLAGS, ...BACKEND_FLAGS, ...COMMON_FLAGS };

/** Image size of the vision data sets, for registrations whose config has these fields. */
const VISION_INPUT = { height: 28, width: 28, channels: 1 };

function inputOverrides(defaults: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if ('inputDim' in defaults) out.inputDim = VISION_INPUT.height * VISION_INPUT.width * VISION_INPUT.channels;
  if ('inputChannels' in defaults) out.inputChannels = VISION_INPUT.channels;
  if ('imageSize' in defaults) out.imageSize = VISION_INPUT.height;
  return out;
}

export const fitCommand = defineMrlCommand({
  name: 'fit',
  description:
    'Train a Matryoshka model (and the baselines asked for), print its per-dim table and write a run folder: config.json, checkpoints/, metrics.json, model/.',
  examples: [
    'mrl-cli fit --modality vision --model mlp --data fashion-mnist --dim 64 --compare ff',
    'mrl-cli fit --model resnet-tiny --dim 32 --epochs 2 --run-dir runs/resnet',
    'mrl-cli fit --model resnet-tiny --dim 128 --compare ff,svd,rand --robustness gaussian-noise:3,contrast:3',
    'mrl-cli fit --modality text --model bert-tiny --task mlm',
    'mrl-cli fit --modality text --model bert-tiny --task classify --epochs 1',
    'mrl-cli fit --modality align            # align-tiny on openclipart (apt-get install openclipart-svg)',
    'mrl-cli fit --run-dir runs/resnet --resume            # continue after Ctrl-C',
    'mrl-cli fit --plugin ./examples/custom-encoder/my-encoder.js --model my-encoder',
    'mrl-cli fit --config mrl.config.json --epochs 1       # flags override the file',
  ],
  flags: FLAGS,
  // With --resume, the saved run's flags are the starting point (its plug-ins only if trusted).
  async base(args) {
    if ((args.resume !== true && args['from-checkpoint'] === undefined) || typeof args['run-dir'] !== 'string')
      return {};
    requireEarlierRun(resolve(args['run-dir']));
    return trustedRunFlags(resolve(args['run-dir']), args);
  },
  async run(options) {
    // Every flag (and a resumed run's saved config) is checked before the run folder changes.
    checkFitFlags(options);
    const fromCheckpoint =
      options['from-checkpoint'] === undefined ? undefined : fromCheckpointStep(options['from-checkpoint']);
    const compare = (options.compare ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const c of compare) {
      if (!(VISION_BASELINES as readonly string[]).includes(c)) {
        throw new MrlError(
          'invalid-argument',
          `--compare '${c}' is not a known baseline.`,
          `Known baselines: ${VISION_BASELINES.join(', ')} (comma-separated).`,
        );
      }
    }
    // The --model and --data defaults are the vision demo's; text and align have their own.
    const defaults = MODALITY_DEFAULTS[options.modality];
    const modelName = options.model === TRAIN_FLAGS.model.default ? defaults.model : options.model;
    const dataName = options.data === DATA_FLAGS.data.default ? defaults.data : options.data;
    const registry = await buildRegistry(options.plugin);
    const registration = findEncoder(registry, modelName, options.modality);
    // Nesting dims are checked before the data loads: a dim larger than d fails here.
    const embeddingDim = options.modality === 'text' ? registration.defaults.embeddingDim : options.dim;
    if (options.weights !== undefined && options.modality !== 'vision') {
      throw new MrlError(
        'invalid-argument',
        `--weights applies to vision runs; the ${options.modality} objectives weight every nesting dim alike.`,
        'Leave out --weights.',
      );
    }
    const dims = [
      ...resolveNesting({
        embeddingDim,
        ...(options.dims === undefined ? {} : { dims: options.dims }),
        ...(options.weights === undefined ? {} : { weights: options.weights }),
      }).dims,
    ];
    // A text run names its task with --task (or, equivalently, --data).
    const textTask = options.task ?? options.data;
    if (options.modality === 'text' && !(TEXT_TASKS as readonly string[]).includes(textTask)) {
      throw new MrlError(
        'invalid-argument',
        `--data '${options.data}' is not a text task.`,
        `With --modality text, use --task ${TEXT_TASKS.join(' | ')}.`,
      );
    }
    const backend = await initBackend(options.backend, { kernels: options.kernels });
    process.stderr.write(`backend: ${backend.name} (${backend.detail})\n`);
    const runDir = resolve(options['run-dir'] ?? join('runs', `${options.modality}-${modelName}`));
    // Refuses a used folder without --resume/--overwrite, locks it, then clears an overwritten run.
    await prepareRunFolder(runDir, options);

    const encoderConfig = {
      ...registration.defaults,
      ...inputOverrides(registration.defaults),
      architecture: registration.name,
    };
    const runConfig: RunConfig = {
      flags: { ...options, 'run-dir': runDir, dims },
      encoder: { name: registration.name, config: { ...encoderConfig, embeddingDim: options.dim } },
      createdAt: new Date().toISOString(),
      mrlCli: '0.1.0',
    };
    await writeFileAtomically(join(runDir, 'config.json'), `${JSON.stringify(runConfig, null, 2)}\n`);

    // Ctrl-C: the trainer finishes its step, writes a checkpoint and reports 'stopped'; a second Ctrl-C quits at once.
    const controller = new AbortController();
    const onSigint = (): void => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\nstopping after this step (Ctrl-C again to quit without a checkpoint)...\n');
      controller.abort();
    };
    const offStopSignals = onStopSignals(onSigint);
    const draw = createProgressReporter(process.stderr, options['log-format']);
    const context: RunContext = {
      runDir,
      seed: options.seed,
      resume: options.resume || fromCheckpoint !== undefined,
      ...(fromCheckpoint === undefined ? {} : { fromCheckpoint }),
      keepCheckpoints: options['keep-checkpoints'],
      signal: controller.signal,
      onEvent: (event: TrainEvent, label: string) => {
        draw(event, label);
        if (event.type === 'stopped') process.exit(130);
      },
      log: (line) =>
        process.stderr.write(
          options['log-format'] === 'json' ? `${JSON.stringify({ type: 'log', message: line })}\n` : `${line}\n`,
        ),
    };
    const optimizer: OptimizerConfig =
      options.optimizer === 'sgd'
        ? {
            type: 'sgd',
            lr: options.lr,
            momentum: 0.9,
            ...(options['weight-decay'] === undefined ? {} : { weightDecay: options['weight-decay'] }),
          }
        : {
            type: 'adamw',
            lr: options.lr,
            ...(options['weight-decay'] === undefined ? {} : { weightDecay: options['weight-decay'] }),
          };
    const printReport = (report: RunReport): void => {
      offStopSignals();
      if (options['log-format'] === 'json') {
        process.stdout.write(
          `${JSON.stringify({ type: 'result', title: report.title, runDir, metrics: join(runDir, 'metrics.json'), model: join(runDir, 'model') })}\n`,
        );
      } else {
        process.stdout.write(
          `\n${report.title}\n${report.table}\n\nmetrics: ${displayPath(join(runDir, 'metrics.json'))}\n`,
        );
      }
    };
    // The flags' defaults suit the vision demo; text and align runs keep their package's own
    // schedule unless the flag is given (a text MLM batch of 128 would not fit the wasm heap).
    const packageSchedule = {
      ...(options.epochs === TRAIN_FLAGS.epochs.default ? {} : { epochs: options.epochs }),
      ...(options['batch-size'] === TRAIN_FLAGS['batch-size'].default ? {} : { batchSize: options['batch-size'] }),
      ...(options.lr === TRAIN_FLAGS.lr.default ? {} : { lr: options.lr }),
    };
    if (options.modality === 'align') {
      const report = await fitAlign(
        {
          model: modelName,
          data: dataName,
          ...(options['data-dir'] === undefined ? {} : { dataDir: options['data-dir'] }),
          embeddingDim: options.dim,
          dims,
          ...packageSchedule,
          ...(options['weight-decay'] === undefined ? {} : { weightDecay: options['weight-decay'] }),
          ...(options['warmup-steps'] === undefined ? {} : { warmupSteps: options['warmup-steps'] }),
          ...(options['clip-norm'] === undefined ? {} : { clipNorm: options['clip-norm'] }),
          ...(options['train-limit'] === undefined ? {} : { limit: options['train-limit'] }),
          checkpointEvery: options['checkpoint-every'],
          backend: backend.name,
        },
        context,
      );
      printReport(report);
      return;
    }
    if (options.modality === 'text') {
      const report = await fitText(
        {
          task: textTask as TextTask,
          model: modelName,
          ...packageSchedule,
          // The BERT config fixes d; --dims picks the nesting dims within it.
          ...(options.dims === undefined ? {} : { dims: options.dims }),
          checkpointEvery: options['checkpoint-every'],
          ...(options['warmup-steps'] === undefined ? {} : { warmupSteps: options['warmup-steps'] }),
          ...(options['clip-norm'] === undefined ? {} : { clipNorm: options['clip-norm'] }),
          ...(options['train-limit'] === undefined ? {} : { maxExamples: options['train-limit'] }),
          ...(options['test-limit'] === undefined ? {} : { evalExamples: options['test-limit'] }),
          backend: backend.name,
        },
        context,
      );
      printReport(report);
      return;
    }
    const createEncoder = (embeddingDim: number): Encoder<tf.Tensor> =>
      registration.create({ ...encoderConfig, embeddingDim }, createRandom(options.seed, 4)) as Encoder<tf.Tensor>;
    const report = await fitVision(
      {
        model: modelName,
        data: options.data,
        ...(options['data-dir'] === undefined ? {} : { dataDir: options['data-dir'] }),
        embeddingDim: options.dim,
        dims,
        ...(options.weights === undefined ? {} : { weights: options.weights }),
        head: options.head,
        epochs: options.epochs,
        batchSize: options['batch-size'],
        optimizer,
        ...(options['warmup-steps'] === undefined ? {} : { warmupSteps: options['warmup-steps'] }),
        ...(options['clip-norm'] === undefined ? {} : { clipNorm: options['clip-norm'] }),
        ...(options['train-limit'] === undefined ? {} : { trainLimit: options['train-limit'] }),
        ...(options['test-limit'] === undefined ? {} : { testLimit: options['test-limit'] }),
        checkpointEvery: options['checkpoint-every'],
        compare: compare as VisionBaseline[],
        ...(options.robustness === undefined ? {} : { robustness: parseCorruptions(options.robustness) }),
        createEncoder,
      },
      context,
    );
    printReport(report);
  },
});

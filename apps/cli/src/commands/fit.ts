import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  createRandom,
  initBackend,
  assertFiniteRunTable,
  formatRunTable,
  MrlError,
  resolveNesting,
  writeFileAtomically,
  type Baseline,
  type Encoder,
  type OptimizerConfig,
  type RunContext,
  type RunReport,
  type RunTable,
  type TrainEvent,
} from '@mrl/core';
import { fitAlign } from '@mrl/align';
import { fitText, readHfConfig, TEXT_TASKS, type TextBaseline, type TextTask } from '@mrl/text';
import { fitVision, parseCorruptions, VISION_BASELINES, type VisionBaseline, type VisionInputShape } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import { defineMrlCommand } from '../command.js';
import {
  BACKEND_FLAGS,
  COMMON_FLAGS,
  DATA_FLAGS,
  INIT_FLAGS,
  RUN_DIR_FLAG,
  TRAIN_FLAGS,
  TRUST_FLAGS,
  type FlagSpec,
  type ModalityFlag,
  type Resolved,
} from '../flags.js';
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

/** What a run of each modality uses when a flag is not given. */
const MODALITY_DEFAULTS = {
  vision: { model: 'mlp', data: 'fashion-mnist', dim: 64 },
  text: { model: 'bert-tiny', data: 'wordnet', dim: undefined },
  align: { model: 'align-tiny', data: 'openclipart', dim: 64 },
} as const;

/** The default text task: runs in under three minutes on two cores and is scored against the majority class. */
const DEFAULT_TEXT_TASK: TextTask = 'classify';

const FLAGS = {
  ...TRAIN_FLAGS,
  ...DATA_FLAGS,
  ...RUN_DIR_FLAG,
  ...TRUST_FLAGS,
  ...BACKEND_FLAGS,
  ...COMMON_FLAGS,
  ...INIT_FLAGS,
};
type FitOptions = Resolved<typeof FLAGS>;

/** Input fields of a registration's config, from the images' shape. */
function inputOverrides(
  defaults: Record<string, unknown>,
  input: { height: number; width: number; channels: number },
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if ('inputDim' in defaults) out.inputDim = input.height * input.width * input.channels;
  if ('inputChannels' in defaults) out.inputChannels = input.channels;
  if ('imageSize' in defaults) out.imageSize = input.height;
  return out;
}

const invalid = (message: string, fix: string): MrlError => new MrlError('invalid-argument', message, fix);

/** A flag was given (on the command line, in --config, or in a resumed run's config). */
function given(options: FitOptions, name: keyof typeof FLAGS): boolean {
  const value = options[name] as unknown;
  const spec = FLAGS[name] as FlagSpec;
  if (value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  return spec.default === undefined || value !== spec.default;
}

/**
 * Every check that needs no data and no backend, before the run folder is touched: flags that
 * do not apply to the modality, ranges, the baselines, the model config JSON.
 */
function validate(options: FitOptions): void {
  const modality = options.modality;
  for (const [name, spec] of Object.entries(FLAGS) as [keyof typeof FLAGS, FlagSpec][]) {
    if (spec.modalities !== undefined && !spec.modalities.includes(modality) && given(options, name)) {
      throw invalid(
        `--${name} applies to ${spec.modalities.join(' and ')} runs, not --modality ${modality}.`,
        `Leave out --${name}${options.config === undefined ? '' : ` (also from ${displayPath(options.config)})`}.`,
      );
    }
  }
  // Ranges of the other numeric flags are checked by the run folder's guard (checkFitFlags).
  for (const name of ['steps', 'threads'] as const) {
    const value = options[name];
    if (value !== undefined && !(value > 0)) {
      throw invalid(`--${name} must be greater than 0, got ${value}.`, `Give a positive --${name} or leave it out.`);
    }
  }
  if (
    options['mask-probability'] !== undefined &&
    !(options['mask-probability'] > 0 && options['mask-probability'] < 1)
  ) {
    throw invalid(`--mask-probability must be between 0 and 1, got ${options['mask-probability']}.`, 'BERT uses 0.15.');
  }
  if (options.channels !== undefined && options.channels !== 1 && options.channels !== 3) {
    throw invalid(`--channels must be 1 or 3, got ${options.channels}.`, 'Use 1 for grey images, 3 for RGB.');
  }
  if (options['image-size'] !== undefined && !(options['image-size'] >= 4)) {
    throw invalid(`--image-size must be at least 4, got ${options['image-size']}.`, 'For example 32.');
  }
  if (options['test-fraction'] !== undefined && !(options['test-fraction'] > 0 && options['test-fraction'] < 1)) {
    throw invalid(`--test-fraction must be between 0 and 1, got ${options['test-fraction']}.`, 'For example 0.1.');
  }
  if (modality === 'text' && options.dim !== undefined) {
    throw invalid(
      "--dim does not apply to text runs: a text encoder's d is its hidden size.",
      'Pick a model (--model bert-mini) or set it with --model-config \'{"embeddingDim":256}\'; --dims picks the nesting dims.',
    );
  }
}

function parseModelConfig(options: FitOptions): Record<string, unknown> {
  const text = options['model-config'];
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new MrlError(
      'invalid-argument',
      `--model-config is not valid JSON: ${(cause as Error).message}.`,
      'Write it as a JSON object, e.g. --model-config \'{"numLayers":1}\' (quote it for the shell).',
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(
      `--model-config must be a JSON object, got ${text}.`,
      'For example --model-config \'{"numLayers":1}\'.',
    );
  }
  return value as Record<string, unknown>;
}

function parseCompare(options: FitOptions, textFile: string | undefined): string[] {
  const compare = (options.compare ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const known: Record<ModalityFlag, readonly string[]> = {
    vision: VISION_BASELINES,
    align: [...VISION_BASELINES, 'trunc', 'none'],
    text: textFile === undefined ? [] : ['ff', 'svd', 'rand', 'untrained'],
  };
  for (const c of compare) {
    if (!known[options.modality].includes(c)) {
      throw invalid(
        `--compare '${c}' is not a baseline of ${options.modality} runs.`,
        known[options.modality].length === 0
          ? `WordNet and corpus text runs print their trivial baseline (majority class, most frequent token or chance) with the table; leave out --compare.`
          : `Known baselines: ${known[options.modality].join(', ')} (comma-separated).`,
      );
    }
  }
  return compare;
}

/** The text task and its data file: --task, or (as before) a task name given as --data; default classify. */
function textTask(options: FitOptions): { task: TextTask; trainFile?: string } {
  const data = options.data;
  if (data !== undefined && (TEXT_TASKS as readonly string[]).includes(data)) {
    if (options.task !== undefined && options.task !== data) {
      throw invalid(
        `--data '${data}' names a text task other than --task ${options.task}.`,
        'Give the task once, with --task.',
      );
    }
    return { task: data as TextTask };
  }
  const task = options.task ?? DEFAULT_TEXT_TASK;
  const builtIn = task === 'mlm' ? 'corpora' : 'wordnet';
  if (data === undefined || data === builtIn) {
    if (task === 'pairs') {
      throw invalid(
        'the pairs task trains on your file of pairs and has no built-in data.',
        'Pass --data pairs.jsonl ({"anchor": ..., "positive": ...[, "negative": ...]} per line).',
      );
    }
    return { task };
  }
  if (task === 'mlm' || task === 'retrieve' || !existsSync(resolve(data))) {
    throw invalid(
      `--data '${data}' is not a data set of the text ${task} task.`,
      task === 'mlm'
        ? 'With --task mlm, leave out --data (it reads the packaged corpora) and add your texts with --text-files.'
        : task === 'retrieve'
          ? 'retrieve reads WordNet; for your own pairs use --task pairs --data pairs.jsonl.'
          : `With --task ${task}, pass an existing .jsonl, .csv or .tsv file, or leave out --data (it reads wordnet).`,
    );
  }
  return { task, trainFile: resolve(data) };
}

/** Absolute paths under the working folder shown relative to it, in every line the run prints. */
function relativise(line: string): string {
  const cwd = `${process.cwd()}/`;
  return cwd === '//' ? line : line.split(cwd).join('');
}

const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };

export const fitCommand = defineMrlCommand({
  name: 'fit',
  description:
    'Train a Matryoshka model (and the baselines asked for), print its per-dim table and write a run ' +
    'folder: config.json, checkpoints/, metrics.json, model/.',
  examples: [
    'mrl-cli fit --modality vision --model mlp --data fashion-mnist --dim 64 --compare ff',
    'mrl-cli fit --modality text          # bert-tiny, WordNet gloss -> class, < 3 min',
    'mrl-cli fit --modality text --task mlm --vocab-size 4096 --mask-probability 0.3 --steps 2000',
    'mrl-cli fit --modality text --task retrieve --steps 400',
    'mrl-cli fit --modality align         # needs apt-get install openclipart-svg, or --data pairs.jsonl',
    'mrl-cli fit --model resnet-tiny --dim 128 --compare ff,svd,rand --robustness gaussian-noise:3',
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
    validate(options);
    const modelConfig = parseModelConfig(options);
    // Every flag (and a resumed run's saved config) is checked before the run folder changes.
    checkFitFlags(options);
    const fromCheckpoint =
      options['from-checkpoint'] === undefined ? undefined : fromCheckpointStep(options['from-checkpoint']);
    const defaults = MODALITY_DEFAULTS[options.modality];
    const modelName = options.model ?? defaults.model;
    const text = options.modality === 'text' ? textTask(options) : undefined;
    const task = text?.task;
    const compare = parseCompare(options, text?.trainFile);
    const dataName =
      text === undefined
        ? (options.data ?? defaults.data)
        : (text.trainFile ?? (task === 'mlm' ? 'corpora' : 'wordnet'));
    const registry = await buildRegistry(options.plugin);
    const registration = findEncoder(registry, modelName, options.modality);
    // A text encoder's d is its hidden size: the pretrained folder's with --init.
    const embeddingDim =
      options.modality === 'text'
        ? options.init !== undefined
          ? Number((await readHfConfig(options.init)).hidden_size)
          : ((modelConfig.embeddingDim as number | undefined) ?? registration.defaults.embeddingDim)
        : (options.dim ?? defaults.dim ?? registration.defaults.embeddingDim);
    // Nesting dims are checked before the data loads: a dim larger than d fails here.
    const dims = [
      ...resolveNesting({
        embeddingDim,
        ...optional('dims', options.dims),
        ...optional('minDim', options['min-dim']),
        ...optional('weights', options.weights),
      }).dims,
    ];
    const runDir = resolve(options['run-dir'] ?? join('runs', `${options.modality}-${modelName}`));
    const backend = await initBackend(options.backend, {
      kernels: options.kernels,
      ...(options.threads === undefined ? {} : { threads: options.threads }),
    });
    process.stderr.write(`backend: ${backend.name} (${backend.detail})\n`);
    // Refuses a used folder without --resume/--overwrite, locks it, then clears an overwritten run.
    await prepareRunFolder(runDir, options);

    // The shape the data will have (fit checks it against the data when it loads).
    const expectedInput =
      options.modality === 'vision' && dataName !== 'fashion-mnist'
        ? { height: options['image-size'] ?? 32, width: options['image-size'] ?? 32, channels: options.channels ?? 3 }
        : { height: 28, width: 28, channels: 1 };
    const encoderConfig = {
      ...registration.defaults,
      ...inputOverrides(registration.defaults, expectedInput),
      ...(options.modality === 'vision' ? modelConfig : {}),
      architecture: registration.name,
    };
    const runConfig: RunConfig = {
      // The values this run used, defaults resolved, so that embed and --resume read them back.
      flags: {
        ...options,
        'run-dir': runDir,
        model: modelName,
        data: dataName,
        dims,
        ...(options.modality === 'text' ? { task } : { dim: embeddingDim }),
      },
      encoder: { name: registration.name, config: { ...encoderConfig, embeddingDim } },
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
    const progress = createProgressReporter(process.stderr, options['log-format']);
    const context: RunContext = {
      runDir,
      seed: options.seed,
      resume: options.resume || fromCheckpoint !== undefined,
      ...(fromCheckpoint === undefined ? {} : { fromCheckpoint }),
      keepCheckpoints: options['keep-checkpoints'],
      signal: controller.signal,
      onPlan: (labels) => progress.plan(labels),
      onEvent: (event: TrainEvent, label: string) => {
        progress.draw(event, label);
        if (event.type === 'stopped') process.exit(130);
      },
      log: (line) =>
        process.stderr.write(
          options['log-format'] === 'json'
            ? `${JSON.stringify({ type: 'log', message: line })}\n`
            : `${relativise(line)}\n`,
        ),
    };
    const schedule = {
      ...optional('epochs', options.epochs),
      ...optional('batchSize', options['batch-size']),
      ...optional('lr', options.lr),
      ...optional('weightDecay', options['weight-decay']),
      ...optional('warmupSteps', options['warmup-steps']),
      ...optional('clipNorm', options['clip-norm']),
      ...optional('checkpointEvery', options['checkpoint-every']),
    };
    let report: RunReport;
    if (options.modality === 'align') {
      report = await fitAlign(
        {
          model: modelName,
          data: dataName,
          ...optional('dataDir', options['data-dir']),
          embeddingDim,
          dims,
          ...optional('weights', options.weights),
          ...optional('dimsPerStep', options['dims-per-step']),
          ...optional('vision', options['vision-model']),
          ...optional('text', options['text-model']),
          ...(options['model-config'] === undefined
            ? {}
            : { visionOverrides: modelConfig, textOverrides: modelConfig }),
          ...optional('trainLimit', options['train-limit']),
          ...optional('testFraction', options['test-fraction']),
          ...optional('imageSize', options['image-size']),
          ...optional('cacheDir', options['cache-dir']),
          ...optional('vocabSize', options['vocab-size']),
          ...optional('maxLength', options['max-length']),
          ...optional('steps', options.steps),
          ...optional('promptTemplate', options['prompt-template']),
          ...optional('gallery', options.gallery),
          // --compare trunc is align's name for rand (truncation of the model without MRL); none: no baseline.
          ...(compare.length === 0
            ? {}
            : {
                compare: [
                  ...new Set(compare.flatMap((c) => (c === 'none' ? [] : c === 'trunc' ? ['rand'] : [c]))),
                ] as Baseline[],
              }),
          ...schedule,
          backend: backend.name,
        },
        context,
      );
    } else if (options.modality === 'text') {
      report = await fitText(
        {
          task: task!,
          model: modelName,
          ...(options['model-config'] === undefined ? {} : { modelOverrides: modelConfig }),
          ...(options.init === undefined ? {} : { init: options.init }),
          ...optional('trainFile', text?.trainFile),
          ...optional('testFile', options['test-file']),
          ...optional('testFraction', options['test-fraction']),
          ...optional('textField', options['text-field']),
          ...optional('labelField', options['label-field']),
          ...optional('anchorField', options['anchor-field']),
          ...optional('positiveField', options['positive-field']),
          ...optional('negativeField', options['negative-field']),
          ...optional('candidatesFile', options.candidates),
          ...optional('maxTextChars', options['max-text-chars']),
          ...optional('longText', options['long-text']),
          ...(compare.length === 0 ? {} : { compare: compare as TextBaseline[] }),
          // The one --head flag; without it text classify files keep the library's default (shared, MRL-E).
          ...optional('head', options.head),
          // The BERT config fixes d; --dims picks the nesting dims within it.
          ...optional('dims', options.dims),
          ...optional('minDim', options['min-dim']),
          ...optional('steps', options.steps),
          ...optional('trainLimit', options['train-limit']),
          ...optional('testLimit', options['test-limit']),
          ...optional('vocabSize', options['vocab-size']),
          ...optional('tokenizer', options.tokenizer),
          ...optional('maxLength', options['max-length']),
          ...(options.corpora === undefined ? {} : { corpora: options.corpora.split(',').map((c) => c.trim()) }),
          ...(options['text-files'].length === 0 ? {} : { textFiles: options['text-files'] }),
          ...optional('maskProbability', options['mask-probability']),
          ...optional('databaseSize', options['database-size']),
          ...optional('wordnetDir', options['data-dir']),
          ...optional('backbone', options.backbone),
          ...optional('backbonePooling', options['backbone-pooling']),
          ...optional('projectionDim', options['projection-dim']),
          ...schedule,
          backend: backend.name,
        },
        context,
      );
    } else {
      const createEncoder = (dim: number, input: VisionInputShape): Encoder<tf.Tensor> =>
        registration.create(
          { ...encoderConfig, ...inputOverrides(registration.defaults, input), embeddingDim: dim },
          createRandom(options.seed, 4),
        ) as Encoder<tf.Tensor>;
      const optimizer: OptimizerConfig =
        options.optimizer === 'sgd'
          ? { type: 'sgd', lr: options.lr ?? 0.001, momentum: 0.9, ...optional('weightDecay', options['weight-decay']) }
          : { type: 'adamw', lr: options.lr ?? 0.001, ...optional('weightDecay', options['weight-decay']) };
      report = await fitVision(
        {
          model: modelName,
          data: dataName,
          ...optional('dataDir', options['data-dir']),
          embeddingDim,
          dims,
          ...optional('minDim', options['min-dim']),
          ...optional('weights', options.weights),
          head: options.head ?? 'separate',
          ...optional('headLrScale', options['head-lr-scale']),
          epochs: options.epochs ?? 10,
          batchSize: options['batch-size'] ?? 128,
          optimizer,
          ...optional('warmupSteps', options['warmup-steps']),
          ...optional('clipNorm', options['clip-norm']),
          ...optional('trainLimit', options['train-limit']),
          ...optional('testLimit', options['test-limit']),
          ...optional('maxQueries', options['max-queries']),
          centerRetrieval: options['center-retrieval'],
          saveModel: options['save-model'],
          ...optional('ffDims', options['ff-dims']),
          ...(options['train-only'] === undefined
            ? {}
            : { trainOnly: options['train-only'].split(',').map((x) => x.trim()) }),
          ...optional('imageSize', options['image-size']),
          ...(options.channels === undefined ? {} : { channels: options.channels as 1 | 3 }),
          ...optional('testFraction', options['test-fraction']),
          strict: options.strict,
          augment: options.augment,
          checkpointEvery: options['checkpoint-every'] ?? 500,
          compare: compare as VisionBaseline[],
          ...(options.robustness === undefined ? {} : { robustness: parseCorruptions(options.robustness) }),
          createEncoder,
        },
        context,
      );
    }
    offStopSignals();
    const metricsPath = join(runDir, 'metrics.json');
    if (report.runTable !== undefined) {
      assertFiniteRunTable(report.runTable);
      await writeRunTable(metricsPath, report.runTable, report.metrics);
    }
    if (options['log-format'] === 'json') {
      process.stdout.write(
        `${JSON.stringify({ type: 'result', title: report.title, runDir, metrics: metricsPath, table: report.runTable, model: join(runDir, 'model') })}\n`,
      );
      return;
    }
    const table = report.runTable === undefined ? `${report.title}\n${report.table}` : formatRunTable(report.runTable);
    process.stdout.write(`\n${table}\n\nmetrics: ${displayPath(metricsPath)}\n`);
    process.stdout.write(nextSteps(options.modality, displayPath(runDir), dims));
  },
});

/** Keeps the run's table in metrics.json (next to what the package wrote there, if anything). */
async function writeRunTable(path: string, table: RunTable, metrics: Record<string, unknown>): Promise<void> {
  let existing: Record<string, unknown> = {};
  if (existsSync(path)) {
    try {
      existing = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    } catch {
      existing = {};
    }
  }
  const merged = { ...metrics, ...existing, table };
  await writeFileAtomically(path, `${JSON.stringify(merged, null, 2)}\n`);
}

/** What to run after fit on this run folder. */
function nextSteps(modality: ModalityFlag, runDir: string, dims: readonly number[]): string {
  const q = (p: string): string => (/^[\w./-]+$/.test(p) ? p : `'${p.replaceAll("'", "'\\''")}'`);
  const lines = [`mrl-cli eval --run-dir ${q(runDir)}                 # the table again, as CSV or JSON, and a chart`];
  lines.push(`mrl-cli report --run-dir ${q(runDir)} --out report.md`);
  if (modality === 'vision') {
    const d = dims[dims.length - 1]!;
    lines.push(
      `mrl-cli embed --run-dir ${q(runDir)} --split train && mrl-cli embed --run-dir ${q(runDir)} --split test`,
    );
    lines.push(
      `mrl-cli search --index ${q(`${runDir}/embeddings/train-d${d}.mrlidx`)} --queries ${q(`${runDir}/embeddings/test-d${d}.npy`)} --shortlist ${dims[0]}:200`,
    );
  }
  return `\nnext:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

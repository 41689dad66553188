import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkpointStep, explainFsError, listCheckpoints, MrlError } from '@mrl/core';
import { parseCorruptions } from '@mrl/vision';
import { readConfigFile } from './flags.js';
import { acquireRunLock } from './run-lock.js';
import { displayPath, readRunConfig } from './run-folder.js';

/*
 * Everything `fit` and `embed` check before a run folder changes: flag ranges, the folder's
 * state (fresh, resumed, overwritten), trust in the plug-ins a folder names, and the lock.
 */

/** Examples in the Fashion-MNIST training split: bounds the steps of a vision run before its data loads. */
const FASHION_MNIST_TRAIN = 60_000;

/** What a run folder holds that a fresh fit would replace. */
const RUN_OUTPUTS = ['config.json', 'checkpoints', 'model', 'metrics.json'];

const bad = (flag: string, value: unknown, rule: string, fix: string): MrlError =>
  new MrlError('invalid-argument', `--${flag} ${String(value)} ${rule}`, fix);

/** The flag values `checkFitFlags` reads (a subset of fit's resolved flags). */
export interface FitFlagValues {
  modality: string;
  dim?: number | undefined;
  epochs?: number | undefined;
  'batch-size'?: number | undefined;
  lr?: number | undefined;
  data?: string | undefined;
  'weight-decay'?: number | undefined;
  'warmup-steps'?: number | undefined;
  'clip-norm'?: number | undefined;
  'train-limit'?: number | undefined;
  'test-limit'?: number | undefined;
  'checkpoint-every'?: number | undefined;
  'keep-checkpoints': number;
  'from-checkpoint'?: string | undefined;
  resume: boolean;
  robustness?: string | undefined;
}

/**
 * Checks every numeric flag of `fit` (and so a resumed run's saved config, which is merged into
 * the same values) before anything is written; one MrlError names the flag, the value and the
 * allowed range.
 */
export function checkFitFlags(options: FitFlagValues): void {
  const positiveInteger = (flag: keyof FitFlagValues & string, fix: string): void => {
    const v = options[flag];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 1))
      throw bad(flag, v, 'must be a whole number of at least 1.', fix);
  };
  positiveInteger('dim', 'Use e.g. --dim 64 (the embedding size d).');
  if (options.epochs !== undefined && !(options.epochs > 0))
    throw bad('epochs', options.epochs, 'must be greater than 0.', 'Use e.g. --epochs 1 (fractions such as 0.5 work).');
  positiveInteger('batch-size', 'Use e.g. --batch-size 128.');
  if (options.lr !== undefined && !(options.lr > 0 && Number.isFinite(options.lr)))
    throw bad('lr', options.lr, 'must be a learning rate greater than 0.', 'Use e.g. --lr 0.001.');
  const wd = options['weight-decay'];
  if (wd !== undefined && !(wd >= 0))
    throw bad('weight-decay', wd, 'must be 0 or more.', 'Use e.g. --weight-decay 0.01, or leave it out.');
  const warmup = options['warmup-steps'];
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0))
    throw bad('warmup-steps', warmup, 'must be a whole number of 0 or more.', 'Use e.g. --warmup-steps 100.');
  const clip = options['clip-norm'];
  if (clip !== undefined && !(clip > 0))
    throw bad('clip-norm', clip, 'must be greater than 0.', 'Use e.g. --clip-norm 1, or leave it out.');
  positiveInteger('train-limit', 'Leave --train-limit out to use every training example.');
  if (options['test-limit'] !== undefined && options['test-limit'] < 1)
    throw bad(
      'test-limit',
      options['test-limit'],
      'would leave no test examples, so every accuracy would be 0/0.',
      'Use --test-limit 1 or more, or leave it out to use the whole test split.',
    );
  positiveInteger('test-limit', 'Use --test-limit 1 or more.');
  positiveInteger('checkpoint-every', 'Use e.g. --checkpoint-every 500.');
  positiveInteger('keep-checkpoints', 'Use e.g. --keep-checkpoints 3 (the roll-back window after divergence).');
  if (options.modality === 'vision' && warmup !== undefined && (options.data ?? 'fashion-mnist') === 'fashion-mnist') {
    // Total steps of a Fashion-MNIST run, known before its data loads: the trainer's own formula
    // with the vision defaults (10 epochs of 128).
    const examples = Math.min(options['train-limit'] ?? FASHION_MNIST_TRAIN, FASHION_MNIST_TRAIN);
    const total = Math.max(
      1,
      Math.round((options.epochs ?? 10) * Math.ceil(examples / (options['batch-size'] ?? 128))),
    );
    if (warmup > total)
      throw bad(
        'warmup-steps',
        warmup,
        `is more than the ${total} steps this run trains.`,
        `Use --warmup-steps ${Math.max(0, Math.floor(total / 10))} or fewer.`,
      );
  }
  if (options['from-checkpoint'] !== undefined) fromCheckpointStep(options['from-checkpoint']);
  if (options.robustness !== undefined) parseCorruptions(options.robustness);
}

/**
 * The step `--from-checkpoint` names: a step number, or the path of a `ckpt-<step>.safetensors`
 * file (which must exist).
 */
export function fromCheckpointStep(value: string): number {
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const step = checkpointStep(value);
  if (step === undefined)
    throw bad(
      'from-checkpoint',
      value,
      'is neither a step number nor a checkpoint file (ckpt-<step>.safetensors).',
      'Pass a step such as --from-checkpoint 1500, or a path such as runs/x/checkpoints/mrl/ckpt-00001500.safetensors.',
    );
  if (!existsSync(resolve(value)))
    throw bad(
      'from-checkpoint',
      value,
      'does not exist.',
      "List the run folder's checkpoints (ls <run-dir>/checkpoints/*).",
    );
  return step;
}

/** The outputs of an earlier run that `runDir` holds (empty when it is absent or unused). */
function earlierRun(runDir: string): string[] {
  return RUN_OUTPUTS.filter((name) => existsSync(join(runDir, name)));
}

/**
 * Prepares the run folder of `fit`, after every flag passed {@link checkFitFlags}:
 * - `--resume` (or `--from-checkpoint`) needs a folder an earlier fit wrote;
 * - a fresh fit refuses a folder that holds an earlier run unless `--overwrite` is given;
 * - the folder is created and locked (see {@link acquireRunLock}) before anything in it changes;
 * - with `--overwrite`, the earlier run's config, checkpoints, model and metrics are removed.
 */
export async function prepareRunFolder(
  runDir: string,
  options: { resume: boolean; overwrite: boolean; 'from-checkpoint'?: string | undefined },
): Promise<void> {
  const continuing = options.resume || options['from-checkpoint'] !== undefined;
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) {
    throw new MrlError(
      'invalid-argument',
      `the run folder ${runDir} is a file, not a folder.`,
      'Choose another --run-dir, or move the file away.',
    );
  }
  const earlier = earlierRun(runDir);
  if (continuing && earlier.length === 0) {
    throw new MrlError(
      'missing-file',
      `${options.resume ? '--resume' : '--from-checkpoint'} needs an earlier run, but ${runDir} ${existsSync(runDir) ? 'holds none' : 'does not exist'}.`,
      'Check --run-dir (it must be the folder an earlier fit wrote), or leave out --resume to train from scratch.',
    );
  }
  const from = options['from-checkpoint'];
  if (from !== undefined) {
    const step = fromCheckpointStep(from);
    const root = join(runDir, 'checkpoints');
    const folders = [root, ...(await readdir(root).catch(() => [])).map((name) => join(root, name))];
    const steps = new Set<number>();
    for (const folder of folders) for (const c of await listCheckpoints(folder)) steps.add(c.step);
    if (!steps.has(step)) {
      throw new MrlError(
        'missing-file',
        `--from-checkpoint ${from}: ${runDir} has no checkpoint of step ${step}.`,
        steps.size === 0
          ? 'The run folder holds no checkpoints; use --resume or train again.'
          : `Steps with a checkpoint: ${[...steps].sort((a, b) => a - b).join(', ')}.`,
      );
    }
  }
  if (options.overwrite && continuing) {
    throw new MrlError(
      'invalid-argument',
      '--overwrite discards the earlier run, --resume continues it: pass one of them.',
      'Use --resume to continue, or --overwrite to start again from scratch.',
    );
  }
  if (!continuing && !options.overwrite && earlier.length > 0) {
    throw new MrlError(
      'invalid-argument',
      `${runDir} already holds a run (${earlier.join(', ')}); a fresh fit would replace it.`,
      `Continue it with --resume, start again with --overwrite (removes ${earlier.join(', ')}), or choose another --run-dir.`,
    );
  }
  try {
    await mkdir(runDir, { recursive: true });
  } catch (error) {
    throw explainFsError(error, 'cannot create the run folder', runDir) ?? error;
  }
  await acquireRunLock(runDir, 'fit');
  if (continuing) keepConfigUnlessTrained(runDir);
  if (options.overwrite && earlier.length > 0) {
    for (const name of earlier) await rm(join(runDir, name), { recursive: true, force: true });
    process.stderr.write(
      `starting fresh: removed ${earlier.join(', ')} of the earlier run in ${displayPath(runDir)}\n`,
    );
  } else if (!continuing && existsSync(join(runDir, 'checkpoints'))) {
    // Unreachable unless the folder changed since the check; never resume a stranger's checkpoints.
    await rm(join(runDir, 'checkpoints'), { recursive: true, force: true });
  }
}

/** Whether a checkpoint under `<run-dir>/checkpoints` was written at or after `since` (ms). */
function checkpointWrittenSince(runDir: string, since: number): boolean {
  const root = join(runDir, 'checkpoints');
  const folders = [root];
  try {
    for (const name of readdirSync(root)) folders.push(join(root, name));
  } catch {
    return false;
  }
  for (const folder of folders) {
    try {
      for (const name of readdirSync(folder))
        if (/^ckpt-\d{8}\.safetensors$/.test(name) && statSync(join(folder, name)).mtimeMs >= since) return true;
    } catch {
      // Not a folder: nothing to look at.
    }
  }
  return false;
}

/**
 * A resumed run rewrites config.json with its merged flags before training. If it then fails
 * before writing a checkpoint (a data folder that is gone, a corrupt checkpoint, divergence
 * straight away), the saved config is put back as it was on exit, so the failing values are
 * never what the next --resume starts from.
 */
function keepConfigUnlessTrained(runDir: string): void {
  const path = join(runDir, 'config.json');
  let previous: Buffer;
  try {
    previous = readFileSync(path);
  } catch {
    return;
  }
  const started = Date.now();
  process.on('exit', (code) => {
    if (code !== 1 || checkpointWrittenSince(runDir, started)) return;
    try {
      if (readFileSync(path).equals(previous)) return;
      const temp = `${path}.${process.pid}.restore`;
      writeFileSync(temp, previous, { flush: true });
      renameSync(temp, path);
    } catch {
      // Best effort at exit: the config written by this run stays.
    }
  });
}

/** Plug-in paths given with a flag value as citty hands it over (string, list, comma-separated). */
function pathsOf(value: unknown): string[] {
  const items = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return items
    .flatMap((v) => String(v).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((p) => resolve(p));
}

/**
 * The saved flags of a run folder, as a base for `fit --resume` and `embed`, with its plug-ins
 * only where the user trusts them: a plug-in is code that runs with the user's rights, so one
 * named by a run folder's config.json loads only with `--trust-plugins` or when the command line
 * (or its `--config` file) names it too. Otherwise one MrlError names the plug-ins.
 */
export async function trustedRunFlags(
  runDir: string,
  args: Record<string, unknown>,
  pick?: readonly string[],
): Promise<Record<string, unknown>> {
  const saved = (await readRunConfig(runDir))?.flags ?? {};
  // How the earlier run was started (--overwrite, --from-checkpoint) is not part of its settings.
  const settings = Object.fromEntries(
    Object.entries(saved).filter(([k]) => !['overwrite', 'from-checkpoint', 'trust-plugins', 'resume'].includes(k)),
  );
  const flags =
    pick === undefined ? settings : Object.fromEntries(Object.entries(settings).filter(([k]) => pick.includes(k)));
  const savedPlugins = Array.isArray(flags.plugin) ? (flags.plugin as unknown[]).map(String) : [];
  if (savedPlugins.length === 0) return flags;
  const named = new Set(pathsOf(args.plugin));
  if (typeof args.config === 'string') {
    const fromFile = (await readConfigFile(resolve(args.config))).plugin;
    for (const p of Array.isArray(fromFile) ? (fromFile as string[]) : []) named.add(p);
  }
  const untrusted = savedPlugins.filter((p) => !named.has(p));
  if (untrusted.length > 0 && args['trust-plugins'] !== true) {
    throw new MrlError(
      'invalid-argument',
      `the run folder ${runDir} names the plug-in${untrusted.length === 1 ? '' : 's'} ${untrusted.join(', ')} in its config.json, and a plug-in is code that runs with your rights, so it is not loaded on the run folder's word.`,
      `If you trust ${untrusted.length === 1 ? 'it' : 'them'}, pass --trust-plugins, or name ${untrusted.length === 1 ? 'it' : 'them'} yourself: ${untrusted.map((p) => `--plugin ${displayPath(p)}`).join(' ')}.`,
    );
  }
  // Plug-ins named on the command line come back through the flag; keep each one once.
  flags.plugin = savedPlugins.filter((p) => !named.has(p));
  return flags;
}

/** `fit --resume` on a folder without an earlier run: said before any flag is merged. */
export function requireEarlierRun(runDir: string): void {
  if (earlierRun(runDir).length === 0) {
    throw new MrlError(
      'missing-file',
      `--resume needs an earlier run, but ${runDir} ${existsSync(runDir) ? 'holds none' : 'does not exist'}.`,
      'Check --run-dir (it must be the folder an earlier fit wrote), or leave out --resume to train from scratch.',
    );
  }
}

/** The values `checkEmbedFlags` reads. */
export interface EmbedFlagValues {
  dim?: number | undefined;
  limit?: number | undefined;
}

/** `embed`'s own flag ranges, before the model loads. */
export function checkEmbedFlags(options: EmbedFlagValues): void {
  if (options.dim !== undefined && options.dim < 1)
    throw bad(
      'dim',
      options.dim,
      'keeps no dims: it must be at least 1.',
      "Use --dim between 1 and the model's d, e.g. --dim 32.",
    );
  if (options.limit !== undefined && options.limit < 1)
    throw bad(
      'limit',
      options.limit,
      'would embed no examples: it must be at least 1.',
      'Leave --limit out to embed the whole split.',
    );
}

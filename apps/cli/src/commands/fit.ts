import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { initBackend, MrlError, writeFileAtomically, type OptimizerConfig, type RunContext } from '@mrl/core';
import { fitVision } from '@mrl/vision';
import { defineCommand } from 'citty';
import { createProgressReporter } from '../progress.js';

const MODALITIES = ['vision', 'text', 'align'] as const;

function parseNumber(value: string | undefined, flag: string, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new MrlError('invalid-argument', `--${flag} must be ${integer ? 'an integer' : 'a number'}, got '${value}'.`);
  }
  return n;
}

function parseDims(value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new MrlError('invalid-argument', `--dims must be integers separated by commas, got '${value}'.`);
    return n;
  });
}

export const fitCommand = defineCommand({
  meta: {
    name: 'fit',
    description: 'Train a Matryoshka model and print its per-dim table.\n\nExample: mrl-cli fit --modality vision --model mlp --data fashion-mnist --compare ff',
  },
  args: {
    modality: { type: 'enum', options: [...MODALITIES], default: 'vision', description: 'vision | text | align' },
    model: { type: 'string', default: 'mlp', description: 'encoder name (see mrl-cli models)' },
    data: { type: 'string', default: 'fashion-mnist', description: 'data set name' },
    'data-dir': { type: 'string', description: 'folder with the data files' },
    dim: { type: 'string', default: '64', description: 'embedding size d' },
    dims: { type: 'string', description: 'nesting dims, e.g. 8,16,32,64 (default: powers of two up to d)' },
    head: { type: 'enum', options: ['separate', 'shared'], default: 'separate', description: 'separate heads (MRL) or one sliced head (MRL-E)' },
    epochs: { type: 'string', default: '10' },
    'batch-size': { type: 'string', default: '128' },
    optimizer: { type: 'enum', options: ['adamw', 'sgd'], default: 'adamw' },
    lr: { type: 'string', default: '0.001' },
    'weight-decay': { type: 'string' },
    'warmup-steps': { type: 'string' },
    'clip-norm': { type: 'string' },
    'train-limit': { type: 'string', description: 'use only the first N training examples' },
    compare: { type: 'string', description: 'baselines to train too, comma-separated: ff' },
    seed: { type: 'string', default: '0' },
    backend: { type: 'string', default: 'wasm', description: 'wasm | cpu | webgpu | tensorflow' },
    'run-dir': { type: 'string', description: 'run folder (default runs/<modality>-<model>)' },
    resume: { type: 'boolean', default: false, description: 'continue from the newest checkpoint in the run folder' },
    'log-format': { type: 'enum', options: ['text', 'json'], default: 'text' },
    debug: { type: 'boolean', default: false, description: 'print stack traces' },
  },
  async run({ args }) {
    const backend = await initBackend(args.backend);
    process.stderr.write(`backend: ${backend.name} (${backend.detail})\n`);
    const runDir = args['run-dir'] ?? join('runs', `${args.modality}-${args.model}`);
    await mkdir(runDir, { recursive: true });
    const controller = new AbortController();
    const onSigint = (): void => controller.abort();
    process.once('SIGINT', onSigint);
    const context: RunContext = {
      runDir,
      seed: parseNumber(args.seed, 'seed', true)!,
      resume: args.resume,
      signal: controller.signal,
      onEvent: createProgressReporter(process.stderr, args['log-format'] as 'text' | 'json'),
      log: (line) => process.stderr.write(`${line}\n`),
    };
    const lr = parseNumber(args.lr, 'lr', false)!;
    const weightDecay = parseNumber(args['weight-decay'], 'weight-decay', false);
    const optimizer: OptimizerConfig =
      args.optimizer === 'sgd'
        ? { type: 'sgd', lr, momentum: 0.9, ...(weightDecay === undefined ? {} : { weightDecay }) }
        : { type: 'adamw', lr, ...(weightDecay === undefined ? {} : { weightDecay }) };
    await writeFileAtomically(join(runDir, 'config.json'), `${JSON.stringify(args, null, 2)}\n`);
    if (args.modality !== 'vision') {
      throw new MrlError('unsupported', `--modality ${args.modality} is not wired into this build yet.`, 'Use --modality vision.');
    }
    const dims = parseDims(args.dims);
    const warmupSteps = parseNumber(args['warmup-steps'], 'warmup-steps', true);
    const clipNorm = parseNumber(args['clip-norm'], 'clip-norm', false);
    const trainLimit = parseNumber(args['train-limit'], 'train-limit', true);
    const compare = (args.compare ?? '').split(',').filter((s) => s !== '');
    for (const c of compare) {
      if (c !== 'ff') throw new MrlError('invalid-argument', `--compare '${c}' is not a known baseline.`, 'Use --compare ff.');
    }
    const report = await fitVision(
      {
        model: args.model,
        data: args.data,
        ...(args['data-dir'] === undefined ? {} : { dataDir: args['data-dir'] }),
        embeddingDim: parseNumber(args.dim, 'dim', true)!,
        ...(dims === undefined ? {} : { dims }),
        head: args.head as 'separate' | 'shared',
        epochs: parseNumber(args.epochs, 'epochs', false)!,
        batchSize: parseNumber(args['batch-size'], 'batch-size', true)!,
        optimizer,
        ...(warmupSteps === undefined ? {} : { warmupSteps }),
        ...(clipNorm === undefined ? {} : { clipNorm }),
        ...(trainLimit === undefined ? {} : { trainLimit }),
        compare: compare as 'ff'[],
      },
      context,
    );
    process.off('SIGINT', onSigint);
    process.stdout.write(`\n${report.title}\n${report.table}\n\nmetrics: ${join(runDir, 'metrics.json')}\n`);
  },
});

import { join } from 'node:path';
import {
  createRandom,
  evaluateClassifier,
  formatTable,
  MlpEncoder,
  MrlError,
  percent,
  resolveNesting,
  trainClassifier,
  writeFileAtomically,
  type ArrayDataset,
  type DimRow,
  type Encoder,
  type HeadKind,
  type MlpConfig,
  type OptimizerConfig,
  type RunContext,
  type RunReport,
} from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import { loadFashionMnist, type ImageSplit } from './fashion-mnist.js';

/** Baselines a run can train beside the Matryoshka model. `ff`: one model per dim. */
export type VisionBaseline = 'ff';

export interface VisionFitOptions {
  /** Encoder name: `mlp` (more in the registry). */
  model: string;
  /** `fashion-mnist`, read from `dataDir` (default: Debian's install folder). */
  data: string;
  dataDir?: string;
  embeddingDim: number;
  dims?: number[];
  minDim?: number;
  head: HeadKind;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  warmupSteps?: number;
  clipNorm?: number;
  /** Use only the first N training examples (quick runs). */
  trainLimit?: number;
  /** Test queries used for the retrieval metrics. */
  maxQueries?: number;
  compare: VisionBaseline[];
  checkpointEvery?: number;
}

function toArrayDataset(split: ImageSplit, limit?: number): ArrayDataset {
  const count = Math.min(split.count, limit ?? split.count);
  const size = split.height * split.width * split.channels;
  return {
    inputs: split.images.subarray(0, count * size),
    exampleShape: [split.height, split.width, split.channels],
    labels: split.labels.subarray(0, count),
    count,
    numClasses: split.numClasses,
  };
}

function createEncoder(options: VisionFitOptions, embeddingDim: number, seed: number): Encoder<tf.Tensor> {
  if (options.model === 'mlp') {
    const config: MlpConfig = { architecture: 'mlp', embeddingDim, inputDim: 784, hidden: [512, 256] };
    return new MlpEncoder(config, createRandom(seed, 4));
  }
  throw new MrlError('unknown-name', `unknown vision model '${options.model}'.`, 'Known models: mlp.');
}

/**
 * Trains a Matryoshka image classifier (and the requested baselines, by the same code) and
 * returns the per-dim table: linear top-1, 1-NN top-1, mAP@10.
 */
export async function fitVision(options: VisionFitOptions, context: RunContext): Promise<RunReport> {
  if (options.data !== 'fashion-mnist') {
    throw new MrlError('unknown-name', `unknown vision data set '${options.data}'.`, 'Use --data fashion-mnist.');
  }
  const data = await loadFashionMnist(options.dataDir);
  const train = toArrayDataset(data.train, options.trainLimit);
  const test = toArrayDataset(data.test);
  context.log(`data: fashion-mnist, ${train.count} train / ${test.count} test images, ${train.numClasses} classes`);
  const { dims } = resolveNesting({
    embeddingDim: options.embeddingDim,
    ...(options.dims === undefined ? {} : { dims: options.dims }),
    ...(options.minDim === undefined ? {} : { minDim: options.minDim }),
  });
  const trainerFor = (label: string) => ({
    epochs: options.epochs,
    batchSize: options.batchSize,
    seed: context.seed,
    optimizer: options.optimizer,
    ...(options.warmupSteps === undefined ? {} : { warmupSteps: options.warmupSteps }),
    ...(options.clipNorm === undefined ? {} : { clipNorm: options.clipNorm }),
    checkpoint: { dir: join(context.runDir, 'checkpoints', label), every: options.checkpointEvery ?? 500 },
    resume: context.resume,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event: Parameters<NonNullable<RunContext['onEvent']>>[0]) => context.onEvent?.(event, label),
  });

  const mrlRun = await trainClassifier({
    encoder: createEncoder(options, options.embeddingDim, context.seed),
    train,
    dims,
    head: options.head,
    trainer: trainerFor('mrl'),
  });
  const mrlRows = await evaluateClassifier({ run: mrlRun, train, test, dims, ...(options.maxQueries === undefined ? {} : { maxQueries: options.maxQueries }) });

  const ffRows = new Map<number, DimRow>();
  if (options.compare.includes('ff')) {
    for (const m of dims) {
      const run = await trainClassifier({ encoder: createEncoder(options, m, context.seed), train, dims: [m], head: 'separate', trainer: trainerFor(`ff-${m}`) });
      const [row] = await evaluateClassifier({ run, train, test, dims: [m], ...(options.maxQueries === undefined ? {} : { maxQueries: options.maxQueries }) });
      ffRows.set(m, row!);
      run.encoder.dispose();
    }
  }

  const rows = mrlRows.map((r) => ({ ...r, ff: ffRows.get(r.dim) }));
  const table = formatTable(rows, [
    { header: 'dim', value: (r) => String(r.dim) },
    { header: 'MRL top-1 %', value: (r) => percent(r.top1) },
    ...(ffRows.size > 0
      ? [
          { header: 'FF top-1 %', value: (r: (typeof rows)[number]) => percent(r.ff?.top1) },
          { header: 'MRL-FF', value: (r: (typeof rows)[number]) => (r.ff?.top1 === undefined ? undefined : (100 * (r.top1! - r.ff.top1)).toFixed(2)) },
        ]
      : []),
    { header: 'MRL 1-NN %', value: (r) => percent(r.nnTop1) },
    ...(ffRows.size > 0 ? [{ header: 'FF 1-NN %', value: (r: (typeof rows)[number]) => percent(r.ff?.nnTop1) }] : []),
    { header: 'MRL mAP@10', value: (r) => r.map10 },
  ]);
  const metrics = { model: options.model, data: options.data, head: options.head, dims, mrl: mrlRows, ff: Object.fromEntries(ffRows) };
  await writeFileAtomically(join(context.runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  mrlRun.encoder.dispose();
  return { title: `Fashion-MNIST, ${options.model}, d=${options.embeddingDim}, ${options.head === 'shared' ? 'MRL-E' : 'MRL'} (test set)`, table, metrics };
}

import { join } from 'node:path';
import {
  headOf,
  MrlError,
  resolveNesting,
  writeFileAtomically,
  type ArrayDataset,
  type BatchSource,
  type ClassTarget,
  type RunContext,
  type SupervisedBatch,
} from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import { checkSameShape, degenerateDataWarnings } from '../data-checks.js';
import { loadVisionData, type VisionData } from '../data/sources.js';
import type { VisionFitOptions, VisionInputShape } from '../fit.js';

/** The data of a vision run, as every model of the run sees it. */
export interface VisionRunData {
  name: string;
  classNames: string[];
  /** Training examples used: all, or the first --train-limit (folders: in a seeded order). */
  trainCount: number;
  /** Training images in memory: the 1-NN database and what SVD is fitted on. */
  train: ArrayDataset;
  test: ArrayDataset;
  /** Folders stream augmented batches from disk over every training image (or the first --train-limit). */
  trainBatches?: BatchSource<SupervisedBatch<tf.Tensor, ClassTarget>>;
  /** Height, width and channels of the images: the encoder's input shape. */
  input: VisionInputShape;
  dims: number[];
}

function limitedBatches(data: VisionData, trainCount: number): VisionRunData['trainBatches'] {
  const batches = data.trainBatches;
  if (batches === undefined || trainCount === data.trainCount) return batches;
  return { size: trainCount, batch: (indices: Int32Array) => batches.batch(indices) };
}

/**
 * Loads the run's data (IDX, folder or manifest), applies the limits, checks the splits, writes
 * `labels.json` (class names and the image transform embed uses) and resolves the nesting dims.
 */
export async function prepareVisionRun(options: VisionFitOptions, context: RunContext): Promise<VisionRunData> {
  const optional = <K extends keyof VisionFitOptions>(key: K) =>
    options[key] === undefined ? {} : { [key]: options[key] };
  const data = await loadVisionData({
    data: options.data,
    ...optional('dataDir'),
    ...optional('imageSize'),
    ...optional('channels'),
    ...optional('testFraction'),
    ...optional('strict'),
    ...optional('augment'),
    seed: context.seed,
    warn: context.log,
  });
  const trainCount = Math.min(options.trainLimit ?? data.trainCount, data.trainCount);
  const train = headOf(data.train, Math.min(trainCount, data.train.count));
  const test = headOf(data.test, options.testLimit ?? data.test.count);
  if (test.count === 0 || train.count === 0) {
    throw new MrlError(
      'invalid-argument',
      `${data.name}: the ${train.count === 0 ? 'training' : 'test'} split is empty.`,
      'Raise --train-limit / --test-limit, or add images.',
    );
  }
  const [height, width, channels] = train.exampleShape as [number, number, number];
  await writeFileAtomically(
    join(context.runDir, 'labels.json'),
    `${JSON.stringify({ data: data.name, classNames: data.classNames, ...(data.transform === undefined ? {} : { transform: data.transform }) }, null, 2)}\n`,
  );
  context.log(
    `data: ${data.name}, ${trainCount} train${train.count < trainCount ? ` (${train.count} decoded for 1-NN and SVD)` : ''} / ${test.count} test images of ${height}x${width}x${channels}, ${train.numClasses} classes`,
  );
  checkSameShape(train.exampleShape, test.exampleShape, data.name);
  for (const warning of degenerateDataWarnings(train, test)) context.log(`warning: ${warning}`);
  const { dims } = resolveNesting({
    embeddingDim: options.embeddingDim,
    ...optional('dims'),
    ...optional('minDim'),
  });
  const trainBatches = limitedBatches(data, trainCount);
  return {
    name: data.name,
    classNames: data.classNames,
    trainCount,
    train,
    test,
    ...(trainBatches === undefined ? {} : { trainBatches }),
    input: { height, width, channels },
    dims: [...dims],
  };
}

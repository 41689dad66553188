import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import type { SupervisedBatch } from '../model.js';
import type { ClassTarget } from '../objective.js';
import type { BatchSource } from '../trainer.js';

/** Labelled examples held in memory: `count` rows of `exampleShape` float values. */
export interface ArrayDataset {
  inputs: Float32Array;
  /** Shape of one example, e.g. [28, 28, 1] or [784]. */
  exampleShape: number[];
  labels: Int32Array;
  count: number;
  numClasses: number;
}

export function exampleSize(dataset: ArrayDataset): number {
  return dataset.exampleShape.reduce((a, b) => a * b, 1);
}

export function checkArrayDataset(dataset: ArrayDataset, name: string): void {
  const size = exampleSize(dataset);
  if (dataset.inputs.length !== dataset.count * size) {
    throw new MrlError(
      'invalid-argument',
      `${name}: ${dataset.inputs.length} input values for ${dataset.count} examples of shape [${dataset.exampleShape.join(', ')}].`,
    );
  }
  if (dataset.labels.length !== dataset.count) {
    throw new MrlError('invalid-argument', `${name}: ${dataset.labels.length} labels for ${dataset.count} examples.`);
  }
}

/** Copies the rows at `indices` into a batch tensor [n, ...exampleShape]. */
export function gatherRows(dataset: ArrayDataset, indices: Int32Array): tf.Tensor {
  const size = exampleSize(dataset);
  const out = new Float32Array(indices.length * size);
  indices.forEach((row, i) => out.set(dataset.inputs.subarray(row * size, (row + 1) * size), i * size));
  return tf.tensor(out, [indices.length, ...dataset.exampleShape]);
}

/** Mini-batches of an in-memory dataset for a classification objective. */
export function classificationBatches(dataset: ArrayDataset): BatchSource<SupervisedBatch<tf.Tensor, ClassTarget>> {
  return {
    size: dataset.count,
    batch(indices) {
      const input = gatherRows(dataset, indices);
      const labels = tf.tensor1d(
        Int32Array.from(indices, (i) => dataset.labels[i]!),
        'int32',
      );
      return { input, target: { labels }, size: indices.length, dispose: () => tf.dispose([input, labels]) };
    },
  };
}

/** The first `count` examples (for quick runs and tests). */
export function headOf(dataset: ArrayDataset, count: number): ArrayDataset {
  const n = Math.min(count, dataset.count);
  const size = exampleSize(dataset);
  return { ...dataset, inputs: dataset.inputs.subarray(0, n * size), labels: dataset.labels.subarray(0, n), count: n };
}

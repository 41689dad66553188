import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';

/**
 * Inputs one `addN` may take. The webgpu backend binds every input of an `addN` as a storage
 * buffer of one shader, and a device may allow as few as 8 per stage (lavapipe does), so a
 * parameter count of inputs (a global gradient norm) fails validation there.
 */
const ADD_N_WIDTH = 4;

/** Elementwise sum of same-shape tensors, as a tree of `addN`s no wider than {@link ADD_N_WIDTH}. */
export function sumTensors(tensors: readonly tf.Tensor[]): tf.Tensor {
  if (tensors.length === 0) throw new MrlError('invalid-argument', 'sumTensors needs at least one tensor.');
  return tf.tidy(() => {
    let level = [...tensors];
    while (level.length > 1) {
      const next: tf.Tensor[] = [];
      for (let i = 0; i < level.length; i += ADD_N_WIDTH) {
        const group = level.slice(i, i + ADD_N_WIDTH);
        next.push(group.length === 1 ? group[0]! : tf.addN(group));
      }
      level = next;
    }
    return tf.clone(level[0]!);
  });
}

// Why: `tf.dropout` draws its mask with a JavaScript generator on one thread, 40-50 ms of every
// BERT-mini step at batch 8 whatever the thread count. These ops draw Philox4x32-10 masks
// (@mrl/kernels' philox.ts): on the addon's threads through `MrlDropoutMultiplier` where the
// backend has it (wasm), in JavaScript elsewhere, with the same bits on every backend and at every
// thread count, so a seeded run repeats and the backends can be checked against each other.
import * as tf from '@tensorflow/tfjs';
import { DROPOUT_MULTIPLIER, type DropoutMultiplierAttrs, dropoutMultiplierValues, dropoutProblem } from '@mrl/kernels';

import { MrlError } from '../errors.js';

function check(rate: number, seed: number): void {
  const problem = dropoutProblem(rate, seed);
  if (problem === undefined) return;
  const fix =
    problem.field === 'rate' ? 'Pass a rate such as 0.1.' : 'Derive seeds from the run seed with integer arithmetic.';
  throw new MrlError('invalid-argument', `${problem.message}.`, fix);
}

/**
 * Dropout's multiplier for a tensor of `shape`: each value 1 / (1 - rate) (rounded to float32, as
 * `tf.dropout` scales) with probability 1 - rate, else 0, drawn from `seed` by Philox4x32-10
 * (@mrl/kernels' `dropoutDraw` says how). The same bits on every backend and thread count.
 *
 * @example
 * ```ts
 * const mask = dropoutMultiplier([8, 4, 128, 128], 0.1, seed); // attention dropout
 * ```
 */
export function dropoutMultiplier(shape: readonly number[], rate: number, seed: number): tf.Tensor {
  check(rate, seed);
  return multiplier(shape, rate, seed);
}

/** {@link dropoutMultiplier} of a checked rate and seed. */
function multiplier(shape: readonly number[], rate: number, seed: number): tf.Tensor {
  if (tf.getKernel(DROPOUT_MULTIPLIER, tf.getBackend()) !== undefined) {
    const attrs: DropoutMultiplierAttrs = { shape: [...shape], rate, seed };
    return tf.engine().runKernel(DROPOUT_MULTIPLIER, {}, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  return tf.tensor(dropoutMultiplierValues(tf.util.sizeFromShape([...shape]), rate, seed), [...shape], 'float32');
}

/**
 * Inverted dropout: `x` times {@link dropoutMultiplier} of its shape (`x` itself at rate 0). The
 * gradient is dy times the same multiplier.
 *
 * @example
 * ```ts
 * const h = dropout(hidden, 0.1, seed);
 * ```
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number): T {
  check(rate, seed);
  if (rate === 0) return x;
  return tf.tidy(() => tf.mul(x, multiplier(x.shape, rate, seed))) as T;
}

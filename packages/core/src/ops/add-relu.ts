import * as tf from '@tensorflow/tfjs';
import { ADD_RELU, RELU_GRAD } from '@mrl/kernels';

/**
 * `relu(a + b)` for two tensors of one shape (a residual block's output), with ReLU's gradient
 * (dy where the output is positive) to both. Where the backend has mrl's kernels (wasm; float32,
 * last axis a multiple of 4) each direction is one pass (on the oneDNN addon's threads where it
 * is built) instead of Add and Relu forward and Step, Cast and Multiply backward; elsewhere it is
 * `tf.relu(tf.add(a, b))`.
 *
 * @example
 * const out = addRelu(h, skip); // [N, H, W, C]
 */
export function addRelu<T extends tf.Tensor>(a: T, b: T): T {
  const c = a.shape[a.rank - 1] ?? 0;
  const backend = tf.getBackend();
  const fused =
    a.dtype === 'float32' &&
    b.dtype === 'float32' &&
    a.shape.join() === b.shape.join() &&
    c > 0 &&
    c % 4 === 0 &&
    tf.getKernel(ADD_RELU, backend) !== undefined &&
    tf.getKernel(RELU_GRAD, backend) !== undefined;
  if (!fused) return tf.tidy(() => tf.relu(tf.add(a, b))) as T;
  return fusedAddRelu(a, b) as T;
}

const fusedAddRelu = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  const y = tf.engine().runKernel(ADD_RELU, { a, b }) as tf.Tensor;
  save([y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [savedY]: tf.Tensor[]) => {
      const g = tf.engine().runKernel(RELU_GRAD, { dy, y: savedY! }) as tf.Tensor;
      // One tensor object per input: the tape may dispose each after adding it up.
      return [g, tf.clone(g)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

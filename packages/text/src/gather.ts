import * as tf from '@tensorflow/tfjs';

/** Backends whose tensors live in JavaScript-reachable memory, where reading the gradient back is free. */
const HOST_BACKENDS = new Set(['cpu', 'wasm']);

/**
 * Tables with at most this many rows take their gradient as a product with the one-hot ids on
 * device backends. TF.js's WebGPU `UnsortedSegmentSum` adds floats with a compare-and-swap loop
 * per value, so when every token adds into the same few rows (BERT's 2 segment embeddings) the
 * adds queue up on those addresses: 1.4 s of a 2.0 s BERT-mini step at batch 64 on an H200. The
 * product costs rows x N x d multiply-adds, nothing for a small table.
 */
export const ONE_HOT_GRADIENT_ROWS = 64;

/**
 * The gradient of `gather(table, ids)` on a device backend: `dy` [N, d] summed into `rows` rows
 * by `ids` [N]. A product with the one-hot ids for small tables, `UnsortedSegmentSum` otherwise
 * (ids outside [0, rows) add nothing either way).
 */
export function deviceRowGradient(dy: tf.Tensor2D, ids: tf.Tensor1D, rows: number): tf.Tensor2D {
  if (rows > ONE_HOT_GRADIENT_ROWS) return tf.unsortedSegmentSum(dy, ids, rows) as tf.Tensor2D;
  return tf.tidy(() => tf.matMul(tf.cast(tf.oneHot(ids, rows), 'float32'), dy, true, false));
}

/**
 * Rows of `table` [V, d] at `indices` [N] -> [N, d], with a gradient that works on every
 * backend. On cpu and wasm the gradient is a scatter-add over the output gradient's values in
 * JavaScript (N*d additions, no dependence on a registered `UnsortedSegmentSum`, which wasm 4.22
 * lacks); on device backends (webgpu, tensorflow) it is `deviceRowGradient`.
 */
export function gatherRows(table: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  const rows = table.shape[0];
  const width = table.shape[1];
  // The indices are an input (with a zero gradient) so the tape keeps them alive until backprop,
  // even when the caller made them inside a tidy that has since ended.
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const t = args[0] as tf.Tensor;
    const ids = args[1] as tf.Tensor;
    const save = args[2] as tf.GradSaveFunc;
    save([ids]);
    const value = tf.gather(t, ids) as tf.Tensor2D;
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const savedIds = saved[0]!;
      if (!HOST_BACKENDS.has(tf.getBackend())) {
        return [deviceRowGradient(dy as tf.Tensor2D, savedIds as tf.Tensor1D, rows), tf.zerosLike(savedIds)];
      }
      const idx = savedIds.dataSync();
      const g = dy.dataSync();
      const out = new Float32Array(rows * width);
      for (let i = 0; i < idx.length; i++) {
        const dst = idx[i]! * width;
        const src = i * width;
        for (let j = 0; j < width; j++) out[dst + j]! += g[src + j]!;
      }
      return [tf.tensor2d(out, [rows, width]), tf.zerosLike(savedIds)];
    };
    return { value, gradFunc };
  });
  return op(table, indices) as tf.Tensor2D;
}

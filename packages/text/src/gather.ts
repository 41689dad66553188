import * as tf from '@tensorflow/tfjs';

/**
 * Rows of `table` [V, d] at `indices` [N] -> [N, d], with a gradient that works on every
 * backend: `UnsortedSegmentSum` where the backend has it (cpu, or wasm once mrl's training
 * kernels register it), otherwise a scatter-add over the gradient's values in JavaScript, which
 * costs N*d additions instead of the V*N*d of a one-hot product.
 */
export function gatherRows(table: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  const rows = table.shape[0];
  const width = table.shape[1];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const value = tf.gather(args[0] as tf.Tensor, indices) as tf.Tensor2D;
    const gradFunc = (dy: tf.Tensor): tf.Tensor => {
      if (tf.getKernel('UnsortedSegmentSum', tf.getBackend()) !== undefined) {
        return tf.unsortedSegmentSum(dy, indices, rows);
      }
      const idx = indices.dataSync();
      const g = dy.dataSync();
      const out = new Float32Array(rows * width);
      for (let i = 0; i < idx.length; i++) {
        const dst = idx[i]! * width;
        const src = i * width;
        for (let j = 0; j < width; j++) out[dst + j]! += g[src + j]!;
      }
      return tf.tensor2d(out, [rows, width]);
    };
    return { value, gradFunc };
  });
  return op(table) as tf.Tensor2D;
}

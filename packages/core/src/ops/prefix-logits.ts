import * as tf from '@tensorflow/tfjs';

/**
 * Logits of every nested prefix of a shared head, stacked: out[j] = z[:, :m_j] @ W[:m_j] + b,
 * shape [k, N, C] for k dims.
 *
 * Forward: chunk products `z[:, m_{j-1}:m_j] @ W[m_{j-1}:m_j]` and a running sum, so all
 * prefixes together cost one full-size product. Backward, written out by hand: chunk j feeds
 * every prefix from j on, so its incoming gradient is the suffix sum S_j = sum_{i>=j} dOut[i];
 * then dz[:, chunk_j] = S_j @ W[chunk_j]^T, dW[chunk_j] = z[:, chunk_j]^T @ S_j and
 * db = sum over rows of S_0. That is again one full-size product each, with none of the
 * zero-padded full-size gradients that autodiff of slices would build per prefix.
 */
export function stackedPrefixLogits(
  embedding: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D,
  dims: readonly number[],
): tf.Tensor3D {
  const starts = dims.map((_, j) => (j === 0 ? 0 : dims[j - 1]!));
  const widths = dims.map((m, j) => m - starts[j]!);
  // customGrad's typing passes inputs and the save function through one rest parameter.
  const op = tf.customGrad(((z: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([z, w]);
    const value = tf.tidy(() => {
      const out: tf.Tensor2D[] = [];
      let running: tf.Tensor2D = tf.expandDims(b, 0);
      dims.forEach((_, j) => {
        const chunk: tf.Tensor2D = tf.matMul(
          tf.slice(z, [0, starts[j]!], [-1, widths[j]!]),
          tf.slice(w, [starts[j]!, 0], [widths[j]!, -1]),
        );
        running = tf.add(running, chunk);
        out.push(running);
      });
      return tf.stack(out) as tf.Tensor3D; // [k, N, C]
    });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [zs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return tf.tidy(() => {
        const perPrefix = tf.unstack(dy) as tf.Tensor2D[]; // k x [N, C]
        const suffix: tf.Tensor2D[] = new Array<tf.Tensor2D>(dims.length);
        let acc: tf.Tensor2D | null = null;
        for (let j = dims.length - 1; j >= 0; j--) {
          const next: tf.Tensor2D = acc === null ? perPrefix[j]! : tf.add(acc, perPrefix[j]!);
          suffix[j] = next;
          acc = next;
        }
        const dzParts = dims.map((_, j) =>
          tf.matMul(suffix[j]!, tf.slice(ws, [starts[j]!, 0], [widths[j]!, -1]), false, true),
        );
        const dwParts = dims.map((_, j) =>
          tf.matMul(tf.slice(zs, [0, starts[j]!], [-1, widths[j]!]), suffix[j]!, true, false),
        );
        let dz = tf.concat(dzParts, 1);
        const width = zs.shape[1];
        const used = dims[dims.length - 1]!;
        // Embedding columns past the largest nesting dim do not reach any logit.
        if (used < width) dz = tf.concat([dz, tf.zeros([zs.shape[0], width - used])], 1);
        let dw = tf.concat(dwParts, 0);
        if (used < ws.shape[0]) dw = tf.concat([dw, tf.zeros([ws.shape[0] - used, ws.shape[1]])], 0);
        const db = tf.sum(suffix[0]!, 0);
        return [dz, dw, db];
      });
    };
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(embedding, weight, bias) as tf.Tensor3D;
}

/**
 * Mean softmax cross-entropy of each stacked logit block [k, N, C] against labels [N]: a vector
 * of k losses, computed in one pass over the stack.
 */
export function stackedSoftmaxCrossEntropy(logits: tf.Tensor3D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[2]); // [N, C]
    const logProbs = tf.logSoftmax(logits); // [k, N, C]
    return tf.neg(tf.mean(tf.sum(tf.mul(logProbs, oneHot), 2), 1)) as tf.Tensor1D; // [k]
  });
}

/**
 * Splits a tensor along its first axis. TF.js's gradient of `unstack` fails when there is one
 * piece (it receives a tensor where it expects a list), so one piece is a reshape instead.
 */
export function unstackFirst<T extends tf.Tensor>(x: tf.Tensor): T[] {
  return x.shape[0] === 1 ? [tf.reshape(x, x.shape.slice(1)) as T] : (tf.unstack(x) as T[]);
}

import * as tf from '@tensorflow/tfjs';
import { runningSumPrefixLogits } from '../heads.js';
import {
  CHUNKED_PREFIX_CE,
  CHUNKED_PREFIX_CE_GRAD,
  type ChunkedPrefixAttrs,
  DEFAULT_VOCAB_CHUNK,
  IGNORE_INDEX,
} from '@mrl/kernels';

/** Options for {@link chunkedPrefixSoftmaxCrossEntropy}. */
export interface ChunkedPrefixOptions {
  /** Classes per chunk (default 512, `DEFAULT_VOCAB_CHUNK`): each prefix's [N, chunk] logits are all that exists at once. */
  chunk?: number;
}

/**
 * The mean softmax cross-entropy of every prefix of a tied output table, as a [k] vector: entry
 * j is `CE(z[:, :m_j] @ table[:, :m_j]^T + b, labels)` for `dims` m_1 < ... < m_k, averaged over
 * the rows whose label is not {@link IGNORE_INDEX} (-100). `table` is [C, d] (a token-embedding
 * table, classes first).
 *
 * Where the backend has the chunked kernels (wasm on native kernels) the vocabulary streams
 * through all prefixes in chunks of `chunk` classes, with an online log-sum-exp per prefix, and
 * the gradient recomputes each chunk's logits: no [N, C] array is stored, so the memory traffic
 * of k nesting dims is that of one. Elsewhere it is the running-sum logits and a log-softmax
 * per dim. Both give the same numbers up to float rounding, and the same as
 * `prefixSoftmaxCrossEntropy(..., 'classes-first')` when no label is ignored.
 *
 * @example
 * ```ts
 * // states [M, 256] of the masked tokens, tokenTable [30522, 256], bias [30522], labels [M]
 * const losses = chunkedPrefixSoftmaxCrossEntropy(states, tokenTable, bias, labels, [16, 32, 64, 128, 256]);
 * ```
 */
export function chunkedPrefixSoftmaxCrossEntropy(
  embedding: tf.Tensor2D,
  table: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  labels: tf.Tensor1D,
  dims: readonly number[],
  options: ChunkedPrefixOptions = {},
): tf.Tensor1D {
  const backend = tf.getBackend();
  const kernels =
    tf.getKernel(CHUNKED_PREFIX_CE, backend) !== undefined &&
    tf.getKernel(CHUNKED_PREFIX_CE_GRAD, backend) !== undefined;
  if (!kernels) return tensorForm(embedding, table, bias, labels, dims);
  return tf.tidy(() => {
    const labelIds = tf.cast(labels, 'int32');
    const attrs: ChunkedPrefixAttrs = { dims: [...dims], chunk: options.chunk ?? DEFAULT_VOCAB_CHUNK };
    const named = attrs as unknown as tf.NamedAttrMap;
    // customGrad's typing passes inputs and the save function through one rest parameter.
    const op = tf.customGrad(((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const [z, w, b] = args as tf.Tensor[];
      const withBias = bias === null ? {} : { bias: b! };
      const inputs: tf.NamedTensorMap = { embedding: z!, weight: w!, labels: labelIds, ...withBias };
      const [losses, lse] = tf.engine().runKernel(CHUNKED_PREFIX_CE, inputs, named) as tf.Tensor[];
      save(bias === null ? [lse!, labelIds, z!, w!] : [lse!, labelIds, z!, w!, b!]);
      return {
        value: losses!,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [savedLse, savedLabels, savedZ, savedW, savedB] = saved;
          return tf.engine().runKernel(
            CHUNKED_PREFIX_CE_GRAD,
            {
              dy,
              lse: savedLse!,
              labels: savedLabels!,
              embedding: savedZ!,
              weight: savedW!,
              ...(savedB === undefined ? {} : { bias: savedB }),
            },
            named,
          ) as tf.Tensor[];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return (bias === null ? op(embedding, table) : op(embedding, table, bias)) as tf.Tensor1D;
  });
}

/**
 * The tensor-op form: running-sum logits and, per dim, a softmax cross-entropy with its own
 * gradient (as `softmaxCrossEntropy`: `(softmax - onehot)` times each row's weight), averaged
 * over the rows whose label is not ignored.
 */
function tensorForm(
  embedding: tf.Tensor2D,
  table: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  labels: tf.Tensor1D,
  dims: readonly number[],
): tf.Tensor1D {
  return tf.tidy(() => {
    const ids = tf.cast(labels, 'int32');
    const kept = tf.notEqual(ids, IGNORE_INDEX);
    const safe = tf.where(kept, ids, tf.zerosLike(ids));
    const valid = tf.cast(kept, 'float32'); // [N]
    const rowWeight: tf.Tensor1D = tf.div(valid, tf.maximum(tf.sum(valid), 1)); // [N], sums to 1 over kept rows
    const losses = runningSumPrefixLogits(embedding, table, bias, dims, 'classes-first').map((logits) =>
      weightedCrossEntropy(logits, safe, rowWeight),
    );
    return tf.stack(losses) as tf.Tensor1D;
  });
}

/** sum_i w_i * CE(logits_i, labels_i), with the gradient `(softmax - onehot) * w_i * dy`. */
function weightedCrossEntropy(logits: tf.Tensor2D, labelIds: tf.Tensor1D, rowWeight: tf.Tensor1D): tf.Scalar {
  const [rows, classes] = logits.shape;
  const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const [value, probs] = tf.tidy(() => {
      const shifted = tf.sub(x, tf.max(x, 1, true));
      const exp = tf.exp(shifted);
      const total = tf.sum(exp, 1, true); // [N, 1]
      const flat = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(classes, 'int32')), labelIds);
      const picked = tf.gather(tf.reshape(shifted, [-1]), flat); // [N]
      const rowLoss = tf.sub(tf.reshape(tf.log(total), [rows]), picked);
      return [tf.sum(tf.mul(rowLoss, rowWeight)), tf.div(exp, total)];
    });
    save([probs, labelIds, rowWeight]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, [p, y, w]: tf.Tensor[]) =>
        tf.mul(tf.sub(p!, tf.oneHot(y as tf.Tensor1D, classes)), tf.mul(tf.reshape(w!, [rows, 1]), dy)),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(logits) as tf.Scalar;
}

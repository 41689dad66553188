// Why: ViT's attention as TF.js ops (Transpose, SplitV, BatchMatMul, Softmax, Concat and
// softmax's gradient chain) was about 80 ms of a ~210 ms 16-thread ViT-tiny step, mostly on one
// thread; the fused kernels of @mrl/kernels (MrlAttention, MrlAttentionGrad on the oneDNN addon)
// do each direction in one call on all threads. This op picks them where the backend has them
// and keeps the TF.js ops (the reference, and every other backend) otherwise.
import * as tf from '@tensorflow/tfjs';
import { ATTENTION, ATTENTION_GRAD, type AttentionAttrs } from '@mrl/kernels';

import { MrlError } from '../errors.js';

/** Options of {@link multiHeadAttention}. */
export interface AttentionOptions {
  /** [B, T]: added to every query's scores for each key (0 for a real token, -1e9 for padding: a padding mask). */
  keyBias?: tf.Tensor2D;
  /** [B, H, T, T]: multiplies the attention probabilities before the product with v (dropout's 0 or 1 / keep). */
  dropout?: tf.Tensor4D;
}

/**
 * Multi-head self-attention (Vaswani et al. 2017) from a qkv projection's output: `qkv`
 * [B, T, 3D] holds q, k and v of `heads` heads of dh = D / heads each (q heads first, then k, then
 * v, as `reshape(qkv, [B, T, 3 heads, dh])` splits it); the result [B, T, D] is
 * (softmax(q k^T / sqrt(dh) + keyBias) dropout) v per head, heads side by side.
 *
 * Where the backend has mrl's fused kernels (wasm on the oneDNN addon: `MrlAttention` and
 * `MrlAttentionGrad`) each direction is one call on the addon's threads that reads q, k, v in
 * place and writes the merged output (and d(qkv)) directly; elsewhere it is the TF.js ops
 * (transpose, split, two batched products, softmax, transpose back). Both agree to float rounding.
 * No gradient flows to `keyBias` or `dropout`.
 *
 * @example
 * ```ts
 * const mixed = multiHeadAttention(qkvLinear.apply(x), 3); // x [16, 65, 192] -> [16, 65, 192]
 * ```
 */
export function multiHeadAttention(qkv: tf.Tensor3D, heads: number, options: AttentionOptions = {}): tf.Tensor3D {
  const [b, t, width3] = qkv.shape;
  const dh = headWidth(qkv, heads);
  const scale = 1 / Math.sqrt(dh);
  const { keyBias, dropout } = options;
  const backend = tf.getBackend();
  const fused =
    qkv.dtype === 'float32' &&
    tf.getKernel(ATTENTION, backend) !== undefined &&
    tf.getKernel(ATTENTION_GRAD, backend) !== undefined;
  if (!fused) return tensorForm(qkv, heads, dh, scale, options);
  const attrs = { scale } satisfies AttentionAttrs as unknown as tf.NamedAttrMap;
  const extra = (bias: tf.Tensor | undefined, mult: tf.Tensor | undefined): tf.NamedTensorMap => ({
    ...(bias === undefined ? {} : { keyBias: bias }),
    ...(mult === undefined ? {} : { dropout: mult }),
  });
  return tf.tidy(() => {
    const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const qkv4 = tf.reshape(x, [b, t, 3 * heads, dh]);
      const [out, p] = tf
        .engine()
        .runKernel(ATTENTION, { qkv: qkv4, ...extra(keyBias, dropout) }, attrs) as tf.Tensor[];
      save(dropout === undefined ? [p!, qkv4] : [p!, qkv4, dropout]);
      return {
        value: tf.reshape(out!, [b, t, heads * dh]),
        gradFunc: (dy: tf.Tensor, [savedP, savedQkv, savedDropout]: tf.Tensor[]) => {
          const dy4 = tf.reshape(dy, [b, t, heads, dh]);
          const inputs = { dy: dy4, p: savedP!, qkv: savedQkv!, ...extra(undefined, savedDropout) };
          const dqkv = tf.engine().runKernel(ATTENTION_GRAD, inputs, attrs) as tf.Tensor;
          return tf.reshape(dqkv, [b, t, width3]);
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
    return op(qkv) as tf.Tensor3D;
  });
}

/** dh of `qkv` [B, T, 3 heads dh]; an `MrlError` when its last axis does not split so. */
function headWidth(qkv: tf.Tensor3D, heads: number): number {
  const width3 = qkv.shape[2];
  if (!Number.isInteger(heads) || heads < 1 || width3 % (3 * heads) !== 0 || width3 === 0) {
    throw new MrlError(
      'invalid-argument',
      `multiHeadAttention: qkv [${qkv.shape.join(', ')}] has a last axis of ${width3}, which is not 3 x heads (${heads}) x a positive head width.`,
    );
  }
  return width3 / (3 * heads);
}

/** The same as TF.js ops (any backend): the attention of `MultiHeadAttention` before the fused kernels. */
function tensorForm(
  qkv: tf.Tensor3D,
  heads: number,
  dh: number,
  scale: number,
  { keyBias, dropout }: AttentionOptions,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t] = qkv.shape;
    const perHead = tf.transpose(tf.reshape(qkv, [b, t, 3 * heads, dh]), [0, 2, 1, 3]); // [B, 3H, T, dh]
    const [q, k, v] = tf.split(perHead, 3, 1).map((p) => tf.reshape(p, [b * heads, t, dh]) as tf.Tensor3D); // [B*H, T, dh]
    let scores: tf.Tensor = tf.mul(tf.matMul(q!, k!, false, true), scale); // [B*H, T, T]
    if (keyBias !== undefined) {
      scores = tf.reshape(tf.add(tf.reshape(scores, [b, heads, t, t]), tf.reshape(keyBias, [b, 1, 1, t])), [
        b * heads,
        t,
        t,
      ]);
    }
    let probabilities = tf.softmax(scores);
    if (dropout !== undefined) probabilities = tf.mul(probabilities, tf.reshape(dropout, [b * heads, t, t]));
    const mixed = tf.matMul(probabilities, v!); // [B*H, T, dh]
    return tf.reshape(tf.transpose(tf.reshape(mixed, [b, heads, t, dh]), [0, 2, 1, 3]), [b, t, heads * dh]); // [B, T, D]
  });
}

/** The TF.js-ops form of {@link multiHeadAttention} whatever the backend has (the reference the fused kernels are checked against). */
export function multiHeadAttentionOps(qkv: tf.Tensor3D, heads: number, options: AttentionOptions = {}): tf.Tensor3D {
  const dh = headWidth(qkv, heads);
  return tensorForm(qkv, heads, dh, 1 / Math.sqrt(dh), options);
}

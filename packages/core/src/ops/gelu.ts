import * as tf from '@tensorflow/tfjs';
import { GELU, GELU_GRAD } from '@mrl/kernels';

const TWO_SQRT_2_OVER_PI = 2 * Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh form (Hendrycks & Gimpel 2016; BERT's and ViT's): `0.5 x (1 + tanh(u))` with
 * `u = sqrt(2/pi) (x + 0.044715 x^3)`, computed as the equal `x * sigmoid(2u)`. The wasm
 * backend's sigmoid is vectorised and its tanh is not: this form runs GELU's forward and
 * backward about 2x faster there (`bench/speed.mjs --profile`), on every backend that has
 * sigmoid (all of them; not every one has erf). Where the backend has mrl's fused kernel (wasm),
 * forward is three passes (keeping sigmoid(2u) for the gradient) and the gradient one, instead
 * of about 6 and 20 kernels.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && tf.getKernel(GELU, tf.getBackend()) !== undefined) return fusedGelu(x);
  return geluTensorOps(x);
}

/** GELU from kernels of its own, forward and gradient (`MrlGelu`, `MrlGeluGrad`). */
const fusedGelu = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const [y, s] = tf.engine().runKernel(GELU, { x }) as tf.Tensor[];
  save([x, s!]);
  return {
    value: y!,
    gradFunc: (dy: tf.Tensor, [sx, ss]: tf.Tensor[]) =>
      tf.engine().runKernel(GELU_GRAD, { x: sx!, s: ss!, dy }) as tf.Tensor,
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/** The same GELU in tensor ops: every backend, and the reference the fused kernel is checked against. */
export function geluTensorOps(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    // 2u = x (2 sqrt(2/pi) + 2 sqrt(2/pi) 0.044715 x^2); x^2 by square, not pow, whose gradient
    // also differentiates the exponent (a log and a select per element).
    const twiceInner = tf.mul(x, tf.add(tf.mul(tf.square(x), TWO_SQRT_2_OVER_PI * 0.044715), TWO_SQRT_2_OVER_PI));
    return tf.mul(x, tf.sigmoid(twiceInner));
  });
}

/**
 * GELU, exact (erf) form: `x Φ(x) = 0.5 x (1 + erf(x / sqrt 2))`, the `gelu` of PyTorch and of
 * Hugging Face BERT configs (`hidden_act: "gelu"`). It differs from the tanh form by up to about
 * 2e-4 per activation, enough to move a pretrained model's outputs past a 1e-4 match, so imported
 * checkpoints use this form. tfjs-core's erf gradient `2/sqrt(pi) exp(-x^2)` gives its derivative.
 */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/** Which GELU a transformer's feed-forward layer uses: `tanh` ({@link gelu}) or `erf` ({@link geluErf}). */
export type GeluForm = 'tanh' | 'erf';

/** The GELU of `form`. */
export function geluOf(form: GeluForm): (x: tf.Tensor) => tf.Tensor {
  return form === 'erf' ? geluErf : gelu;
}

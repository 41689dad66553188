import * as tf from '@tensorflow/tfjs';

const TWO_SQRT_2_OVER_PI = 2 * Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh form (Hendrycks & Gimpel 2016; BERT's and ViT's): `0.5 x (1 + tanh(u))` with
 * `u = sqrt(2/pi) (x + 0.044715 x^3)`, computed as the equal `x * sigmoid(2u)`. The wasm
 * backend's sigmoid is vectorised and its tanh is not: this form runs GELU's forward and
 * backward about 2x faster there (`bench/speed.mjs --profile`), on every backend that has
 * sigmoid (all of them; not every one has erf).
 */
export function gelu(x: tf.Tensor): tf.Tensor {
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

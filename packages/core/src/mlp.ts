import * as tf from '@tensorflow/tfjs';
import type { Encoder, EncoderConfig } from './encoder.js';
import { MrlError } from './errors.js';
import type { VariableMap } from './module.js';
import { nextSeed, type Random } from './rng.js';

export interface MlpConfig extends EncoderConfig {
  architecture: 'mlp';
  /** Flattened input size, e.g. 784 for 28x28 images. */
  inputDim: number;
  /** Widths of the hidden ReLU layers. */
  hidden: number[];
}

/**
 * Multi-layer perceptron encoder: flatten, ReLU hidden layers, then a linear layer to the
 * embedding [N, d]. The smallest encoder, for tabular or small image data and for tests.
 */
export class MlpEncoder implements Encoder<tf.Tensor> {
  readonly embeddingDim: number;
  readonly #layers: { w: tf.Variable; b: tf.Variable }[] = [];

  constructor(
    readonly config: MlpConfig,
    random: Random,
  ) {
    const widths = [config.inputDim, ...config.hidden, config.embeddingDim];
    widths.forEach((w, i) => {
      if (!Number.isInteger(w) || w < 1) {
        throw new MrlError('invalid-config', `mlp layer ${i} width must be a positive integer, got ${w}.`);
      }
    });
    this.embeddingDim = config.embeddingDim;
    for (let i = 0; i + 1 < widths.length; i++) {
      const fanIn = widths[i]!;
      const fanOut = widths[i + 1]!;
      // He initialisation for the ReLU layers; the last (linear) layer uses the same scale.
      const std = Math.sqrt(2 / fanIn);
      // The tidy frees the initial values; the variables keep their data.
      this.#layers.push({
        w: tf.tidy(() => tf.variable(tf.truncatedNormal([fanIn, fanOut], 0, std, 'float32', nextSeed(random)), true)),
        b: tf.tidy(() => tf.variable(tf.zeros([fanOut]), true)),
      });
    }
  }

  encode(input: tf.Tensor, _training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      let h = tf.reshape(input, [input.shape[0]!, -1]) as tf.Tensor2D; // [N, inputDim]
      if (h.shape[1] !== this.config.inputDim) {
        throw new MrlError(
          'invalid-argument',
          `mlp expects ${this.config.inputDim} input values per example, got ${h.shape[1]}.`,
        );
      }
      this.#layers.forEach(({ w, b }, i) => {
        const last = i === this.#layers.length - 1;
        h = tf.fused.matMul({
          a: h,
          b: w as tf.Tensor2D,
          bias: b,
          activation: last ? 'linear' : 'relu',
        }) as tf.Tensor2D;
      });
      return h; // [N, d]
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    this.#layers.forEach(({ w, b }, i) => {
      out.set(`dense${i}/w`, w);
      out.set(`dense${i}/b`, b);
    });
    return out;
  }

  dispose(): void {
    for (const { w, b } of this.#layers) {
      w.dispose();
      b.dispose();
    }
  }
}

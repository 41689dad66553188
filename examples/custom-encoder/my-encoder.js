// A custom encoder for mrl-cli, as a plain ES module: no build step, no install of its own.
// mrl-cli resolves this file's imports of @tensorflow/tfjs, inversify and @mrl/core to its own
// copies, so the plug-in shares the CLI's tensor engine and DI tokens.
//
//   mrl-cli models --plugin ./examples/custom-encoder/my-encoder.js
//   mrl-cli fit --plugin ./examples/custom-encoder/my-encoder.js --model my-encoder --dim 32
import * as tf from '@tensorflow/tfjs';
import { ENCODER_REGISTRATION } from '@mrl/core';
import { ContainerModule } from 'inversify';

/** Standard normal samples from the uniform stream mrl hands to every encoder (seeded, reproducible). */
function normal(random, count, std) {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = Math.max(random(), 1e-12);
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * Flattened pixels -> tanh hidden layer -> a linear layer to the d-dim embedding.
 * Implements mrl's Encoder interface: config, embeddingDim, encode, variables, dispose.
 */
export class TanhMlpEncoder {
  constructor(config, random) {
    this.config = config;
    this.embeddingDim = config.embeddingDim;
    const { inputDim, hidden, embeddingDim } = config;
    // Glorot-scaled weights for tanh; zero biases.
    this.w1 = tf.variable(
      tf.tensor2d(normal(random, inputDim * hidden, Math.sqrt(1 / inputDim)), [inputDim, hidden]),
      true,
    );
    this.b1 = tf.variable(tf.zeros([hidden]), true);
    this.w2 = tf.variable(
      tf.tensor2d(normal(random, hidden * embeddingDim, Math.sqrt(1 / hidden)), [hidden, embeddingDim]),
      true,
    );
    this.b2 = tf.variable(tf.zeros([embeddingDim]), true);
  }

  /** [N, 28, 28, 1] -> [N, d] */
  encode(input, _training) {
    return tf.tidy(() => {
      const x = tf.reshape(input, [input.shape[0], -1]); // [N, 784]
      const h = tf.tanh(tf.add(tf.matMul(x, this.w1), this.b1)); // [N, hidden]
      return tf.add(tf.matMul(h, this.w2), this.b2); // [N, d]
    });
  }

  /** Names are stable: checkpoints and the saved model use them. */
  variables() {
    return new Map([
      ['dense0/w', this.w1],
      ['dense0/b', this.b1],
      ['dense1/w', this.w2],
      ['dense1/b', this.b2],
    ]);
  }

  dispose() {
    for (const v of this.variables().values()) v.dispose();
  }
}

/** The plug-in: one more inversify ContainerModule binding an EncoderRegistration. */
export default new ContainerModule(({ bind }) => {
  bind(ENCODER_REGISTRATION).toConstantValue({
    name: 'my-encoder',
    modality: 'vision',
    description: 'example plug-in: tanh MLP on flattened pixels (784-128-d)',
    defaults: { architecture: 'my-encoder', embeddingDim: 32, inputDim: 784, hidden: 128 },
    create: (config, random) => new TanhMlpEncoder(config, random),
  });
});

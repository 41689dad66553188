import * as tf from '@tensorflow/tfjs';
import { nextSeed, type Encoder, type EncoderConfig, type Random, type VariableMap } from '@mrl/core';

/**
 * A fixed-size (FF) baseline's encoder: the BERT's pooled d-dim state through a trainable linear
 * layer to m dims, so the model is trained for m dims alone (Kusupati et al. 2022, "FF").
 */
export class ProjectedEncoder<Input> implements Encoder<Input> {
  readonly config: EncoderConfig;
  readonly weight: tf.Variable; // [d, m]
  readonly bias: tf.Variable; // [m]

  constructor(
    readonly inner: Encoder<Input>,
    readonly embeddingDim: number,
    random: Random,
  ) {
    this.config = { ...inner.config, architecture: `${inner.config.architecture}+projection`, embeddingDim };
    const limit = Math.sqrt(6 / (inner.embeddingDim + embeddingDim)); // Glorot-uniform
    this.weight = tf.tidy(() =>
      tf.variable(tf.randomUniform([inner.embeddingDim, embeddingDim], -limit, limit, 'float32', nextSeed(random))),
    );
    this.bias = tf.tidy(() => tf.variable(tf.zeros([embeddingDim])));
  }

  encode(input: Input, training: boolean): tf.Tensor2D {
    return tf.tidy(
      () => tf.add(tf.matMul(this.inner.encode(input, training), this.weight as tf.Tensor2D), this.bias) as tf.Tensor2D,
    );
  }

  variables(): VariableMap {
    return new Map([
      ...[...this.inner.variables()].map(([k, v]) => [`inner/${k}`, v] as const),
      ['projection/w', this.weight],
      ['projection/b', this.bias],
    ]);
  }

  dispose(): void {
    this.inner.dispose();
    tf.dispose([this.weight, this.bias]);
  }
}

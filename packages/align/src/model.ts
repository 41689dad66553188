import * as tf from '@tensorflow/tfjs';
import {
  MrlError,
  nextSeed,
  prefixVariables,
  type Encoder,
  type EncoderConfig,
  type MatryoshkaLoss,
  type Random,
  type TrainModel,
  type VariableMap,
} from '@mrl/core';
import type { TokenBatch } from '@mrl/text';
import type { AlignTarget } from './loss.js';

/** A linear map [in] -> [d] without bias (CLIP's `visual.proj` / `text_projection`). */
export class Projection {
  readonly weight: tf.Variable; // [in, d]

  constructor(
    readonly inputDim: number,
    readonly outputDim: number,
    random: Random,
  ) {
    if (!Number.isInteger(inputDim) || inputDim < 1 || !Number.isInteger(outputDim) || outputDim < 1) {
      throw new MrlError(
        'invalid-argument',
        `projection sizes must be positive integers, got ${inputDim} -> ${outputDim}.`,
      );
    }
    this.weight = tf.variable(
      tf.randomNormal([inputDim, outputDim], 0, 1 / Math.sqrt(inputDim), 'float32', nextSeed(random)),
      true,
    );
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(x, this.weight as tf.Tensor2D);
  }

  variables(): VariableMap {
    return new Map([['weight', this.weight]]);
  }
}

/** One side of a dual encoder for embedding: images (NHWC float) or tokenised captions. */
export type AlignInput = { images: tf.Tensor4D } | { tokens: TokenBatch };

/** The JSON config of a dual encoder: both towers' configs and the shared embedding size. */
export interface DualEncoderConfig extends EncoderConfig {
  architecture: string;
  /** Shared embedding size d after both projections. */
  embeddingDim: number;
  vision: EncoderConfig;
  text: EncoderConfig;
}

/**
 * A vision tower and a text tower, each followed by a linear projection to a shared d (ALIGN,
 * Jia et al., 2021; CLIP, Radford et al., 2021). It is an `Encoder` of either modality: the
 * input says which tower runs.
 *
 * @example
 * ```ts
 * const dual = createDualEncoder({ vision: 'resnet-tiny', text: 'bert-tiny', embeddingDim: 64, textOverrides: { vocabSize: 2000 } }, createRandom(0));
 * const z = dual.encode({ images }, false); // [N, 64]
 * ```
 */
export class DualEncoder implements Encoder<AlignInput> {
  readonly imageProjection: Projection;
  readonly textProjection: Projection;

  constructor(
    readonly config: DualEncoderConfig,
    readonly vision: Encoder<tf.Tensor>,
    readonly text: Encoder<TokenBatch>,
    random: Random,
  ) {
    this.imageProjection = new Projection(vision.embeddingDim, config.embeddingDim, random);
    this.textProjection = new Projection(text.embeddingDim, config.embeddingDim, random);
  }

  get embeddingDim(): number {
    return this.config.embeddingDim;
  }

  /** Images [N, H, W, C] -> [N, d] (not normalised). */
  encodeImages(images: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => this.imageProjection.apply(this.vision.encode(images, training)));
  }

  /** Captions -> [N, d] (not normalised). */
  encodeTexts(tokens: TokenBatch, training: boolean): tf.Tensor2D {
    return tf.tidy(() => this.textProjection.apply(this.text.encode(tokens, training)));
  }

  encode(input: AlignInput, training: boolean): tf.Tensor2D {
    return 'images' in input ? this.encodeImages(input.images, training) : this.encodeTexts(input.tokens, training);
  }

  variables(): VariableMap {
    return prefixVariables({
      vision: this.vision,
      text: this.text,
      image_projection: this.imageProjection,
      text_projection: this.textProjection,
    });
  }

  dispose(): void {
    for (const v of this.variables().values()) v.dispose();
  }
}

/** A batch of image-caption pairs: row i of `images` goes with row i of `tokens`. */
export interface AlignBatch {
  images: tf.Tensor4D; // [B, H, W, C]
  tokens: TokenBatch; // [B, T]
  size: number;
  dispose(): void;
}

/**
 * Dual encoder + Matryoshka contrastive loss: both towers run once per batch, and every nesting
 * dim's symmetric loss slices their outputs (the objective owns the learnable temperature).
 */
export class AlignModel implements TrainModel<AlignBatch> {
  constructor(
    readonly encoder: DualEncoder,
    readonly matryoshka: MatryoshkaLoss<AlignTarget>,
  ) {
    if (encoder.embeddingDim < matryoshka.embeddingDim) {
      throw new MrlError(
        'invalid-config',
        `the dual encoder outputs ${encoder.embeddingDim} dims but the largest nesting dim is ${matryoshka.embeddingDim}.`,
      );
    }
  }

  loss(batch: AlignBatch, random: Random): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const images = this.encoder.encodeImages(batch.images, true); // [B, d]
    const texts = this.encoder.encodeTexts(batch.tokens, true); // [B, d]
    const { total, parts } = this.matryoshka.compute(images, { texts }, random);
    return { total, parts };
  }

  variables(): VariableMap {
    return prefixVariables({ encoder: this.encoder, objective: this.matryoshka });
  }
}

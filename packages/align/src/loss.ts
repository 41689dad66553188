import * as tf from '@tensorflow/tfjs';
import { l2Normalize, MrlError, softmaxCrossEntropy, type PrefixObjective, type VariableMap } from '@mrl/core';

/** CLIP's initial temperature 0.07, i.e. logit scale 1/0.07 (Radford et al., 2021). */
export const INIT_LOGIT_SCALE = 1 / 0.07;
/** CLIP and ALIGN clamp the logit scale at 100 so training cannot sharpen the softmax further. */
export const MAX_LOGIT_SCALE = 100;

/** The text embeddings paired with a batch of image embeddings: row i of `texts` describes image i. */
export interface AlignTarget {
  /** [N, d'] with d' >= the largest nesting dim. */
  texts: tf.Tensor2D;
}

/**
 * `scale * normalise(a[:, :m]) @ normalise(b[:, :m])^T` -> [N, N]: row i scores image i against
 * every text of the batch (open_clip `ClipLoss.get_logits`). Each prefix is L2-normalised on its
 * own, so a prefix is a usable embedding by itself.
 */
export function contrastiveLogits(images: tf.Tensor2D, texts: tf.Tensor2D, m: number, scale: tf.Scalar): tf.Tensor2D {
  return tf.tidy(() => {
    const a = l2Normalize(tf.slice(images, [0, 0], [-1, m])); // [N, m]
    const b = l2Normalize(tf.slice(texts, [0, 0], [-1, m])); // [N, m]
    return tf.mul(tf.matMul(a, tf.transpose(b)), scale) as tf.Tensor2D;
  });
}

/** In-batch positives: image i belongs with text i (open_clip `ClipLoss.get_ground_truth`). */
export function contrastiveLabels(n: number): tf.Tensor1D {
  return tf.range(0, n, 1, 'int32') as tf.Tensor1D;
}

/**
 * The symmetric cross-entropy of CLIP: the mean of image->text (rows of `logits`) and
 * text->image (columns) softmax cross-entropy against the diagonal.
 */
export function symmetricCrossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
): { total: tf.Scalar; imageToText: tf.Scalar; textToImage: tf.Scalar } {
  const imageToText = softmaxCrossEntropy(logits, labels);
  const textToImage = tf.tidy(() => softmaxCrossEntropy(tf.transpose(logits), labels));
  const total = tf.tidy(() => tf.div(tf.add(imageToText, textToImage), 2) as tf.Scalar);
  return { total, imageToText, textToImage };
}

/**
 * CLIP / ALIGN contrastive objective on nested prefixes (Radford et al., 2021; Jia et al., 2021),
 * as a core `PrefixObjective`: for each nesting dim m, both embeddings are cut to m dims and
 * L2-normalised, and the symmetric in-batch cross-entropy is taken with one learnable
 * temperature. The temperature is stored as `log(scale)` (init `log(1/0.07)`) and its
 * exponential is clamped at 100, as CLIP does.
 *
 * @example
 * ```ts
 * const loss = new MatryoshkaLoss(new ClipContrastiveObjective(), { embeddingDim: 64 });
 * const { total, parts } = loss.compute(imageEmbeddings, { texts: textEmbeddings });
 * ```
 */
export class ClipContrastiveObjective implements PrefixObjective<AlignTarget> {
  readonly name = 'clip-contrastive';
  /** log of the logit scale (1 / temperature); trainable unless `learnTemperature` is false. */
  readonly logScale: tf.Variable;

  constructor(options: { initScale?: number; maxScale?: number; learnTemperature?: boolean } = {}) {
    const init = options.initScale ?? INIT_LOGIT_SCALE;
    this.maxScale = options.maxScale ?? MAX_LOGIT_SCALE;
    if (!(init > 0) || !Number.isFinite(init))
      throw new MrlError('invalid-argument', `initScale must be a finite number > 0, got ${init}.`);
    if (!(this.maxScale >= init)) {
      throw new MrlError(
        'invalid-argument',
        `maxScale ${this.maxScale} is below initScale ${init}.`,
        'The clamp must allow the initial logit scale; CLIP uses 100 and 1/0.07.',
      );
    }
    this.logScale = tf.variable(tf.scalar(Math.log(init)), options.learnTemperature ?? true);
  }

  readonly maxScale: number;

  /** The clamped logit scale `min(exp(logScale), maxScale)` as a tensor on the tape. */
  scale(): tf.Scalar {
    return tf.tidy(() => tf.exp(tf.minimum(this.logScale, Math.log(this.maxScale))) as tf.Scalar);
  }

  /** The current logit scale as a number (1 / temperature); read asynchronously, as device backends need. */
  async scaleValue(): Promise<number> {
    return Math.min(Math.exp((await this.logScale.data())[0]!), this.maxScale);
  }

  prefixLosses(images: tf.Tensor2D, dims: readonly number[], target: AlignTarget): tf.Scalar[] {
    const [n, width] = images.shape;
    if (target.texts.shape[0] !== n) {
      throw new MrlError(
        'invalid-argument',
        `got ${n} image embeddings but ${target.texts.shape[0]} text embeddings; they must pair up row by row.`,
      );
    }
    const largest = dims[dims.length - 1] ?? 0;
    if (target.texts.shape[1] < largest || width < largest) {
      throw new MrlError(
        'invalid-argument',
        `embeddings have ${width} (image) and ${target.texts.shape[1]} (text) dims; the largest nesting dim is ${largest}.`,
      );
    }
    const scale = this.scale();
    const labels = contrastiveLabels(n);
    const losses = dims.map((m) =>
      tf.tidy(() => {
        const { total } = symmetricCrossEntropy(contrastiveLogits(images, target.texts, m, scale), labels);
        return total;
      }),
    );
    // Under a gradient tape the tape keeps what backprop needs; these handles are ours to free.
    tf.dispose([scale, labels]);
    return losses;
  }

  variables(): VariableMap {
    return new Map([['logit_scale', this.logScale]]);
  }

  dispose(): void {
    this.logScale.dispose();
  }
}

import {
  checkPrecision,
  embedDataset,
  encodeEmbeddings,
  MrlError,
  type EncodedEmbeddings,
  type Encoder,
  type EncodeOptions,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';

/** Images as model inputs: `count` NHWC images of `shape` [height, width, channels], row-major floats. */
export interface ImageInputs {
  data: Float32Array;
  count: number;
  shape: readonly [number, number, number];
}

/**
 * Embeds images with a trained vision encoder (e.g. `loadVisionModel('runs/x/model')`): the first
 * `dim` values of each embedding, renormalised by core's `truncateAndNormalize`, at `precision`
 * (float32, int8, uint8, binary, ubinary; core's `encodeEmbeddings`, as text's `encode`).
 * Decode new image files as the run did with `decodeImages(files, indices, transform)` and the
 * transform in `<runDir>/labels.json`.
 *
 * @example
 * ```ts
 * const encoder = await loadVisionModel('runs/photos/model');
 * const out = await encode(encoder, { data: pixels, count: 2, shape: [32, 32, 3] }, { dim: 16, precision: 'int8' });
 * ```
 */
export async function encode(
  encoder: Encoder<tf.Tensor>,
  images: ImageInputs,
  options: EncodeOptions = {},
): Promise<EncodedEmbeddings> {
  checkPrecision(options.precision ?? 'float32');
  const size = images.shape[0] * images.shape[1] * images.shape[2];
  if (images.data.length !== images.count * size) {
    throw new MrlError(
      'invalid-argument',
      `got ${images.data.length} values for ${images.count} images of ${images.shape.join('x')} (${images.count * size}).`,
      'Pass count images of height x width x channels floats each, row-major (NHWC).',
    );
  }
  const full = await embedDataset(
    encoder,
    images.count,
    (indices) => {
      const out = new Float32Array(indices.length * size);
      indices.forEach((row, i) => out.set(images.data.subarray(row * size, (row + 1) * size), i * size));
      return tf.tensor(out, [indices.length, ...images.shape]);
    },
    { batchSize: options.batchSize ?? 128 },
  );
  return encodeEmbeddings(full, options, 'the image embeddings');
}

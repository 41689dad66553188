import type { SpecialIds, TokenBatch } from '@mrl/text';
import { padRows } from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import type { PixelSet } from './data.js';

/** NHWC float images in [-1, 1] from uint8 RGB rows. */
export function imageTensor(set: PixelSet, indices: ArrayLike<number>): tf.Tensor4D {
  const stride = set.size * set.size * 3;
  const out = new Float32Array(indices.length * stride);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b]! * stride;
    for (let j = 0; j < stride; j++) out[b * stride + j] = set.pixels[src + j]! / 127.5 - 1;
  }
  return tf.tensor4d(out, [indices.length, set.size, set.size, 3]);
}

/** Token ids rows -> padded `[CLS] ... [SEP]` batch tensors. */
export function tokenTensor(rows: readonly (readonly number[])[], maxLength: number, special: SpecialIds): TokenBatch {
  const encoded = padRows(rows, maxLength, special);
  const shape: [number, number] = [encoded.batch, encoded.length];
  return {
    ids: tf.tensor2d(encoded.ids, shape, 'int32'),
    attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32'),
  };
}

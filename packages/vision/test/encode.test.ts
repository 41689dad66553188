import { createRandom, initBackend } from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../src/encode.js';
import { createVisionEncoder } from '../src/models/registry.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('encode', () => {
  it('keeps the first dim values renormalised, or int8 codes, of a vision encoder', async () => {
    const encoder = createVisionEncoder('mlp', { inputDim: 16, embeddingDim: 8 }, createRandom(2));
    const random = createRandom(3);
    const images = { data: Float32Array.from({ length: 5 * 16 }, () => random()), count: 5, shape: [4, 4, 1] as const };
    const full = tf.tidy(() => encoder.encode(tf.tensor(images.data, [5, 4, 4, 1]), false).dataSync() as Float32Array);
    const out = await encode(encoder, images, { dim: 4, batchSize: 2 });
    expect([out.rows, out.width, out.precision]).toEqual([5, 4, 'float32']);
    for (let r = 0; r < 5; r++) {
      const row = Array.from(full.subarray(r * 8, r * 8 + 4));
      const norm = Math.hypot(...row);
      row.forEach((x, j) => expect(out.data[r * 4 + j]).toBeCloseTo(x / norm, 5));
    }
    const raw = await encode(encoder, images, { dim: 4, normalize: false });
    Array.from(raw.data).forEach((x, i) => expect(x).toBeCloseTo(full[Math.floor(i / 4) * 8 + (i % 4)]!, 5));
    const int8 = await encode(encoder, images, { dim: 4, precision: 'int8' });
    expect(int8.data).toBeInstanceOf(Int8Array);
    expect(Math.min(...int8.data)).toBe(-128); // each dim's minimum is the bottom of its calibration range
    await expect(encode(encoder, { ...images, count: 4 })).rejects.toThrow('got 80 values for 4 images of 4x4x1 (64).');
    encoder.dispose();
  });
});

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

/** Debian's python3-skimage sample photos (apt-get install python3-skimage). */
export const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export function skimagePhoto(name: string): string {
  const path = join(SKIMAGE_DATA, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install python3-skimage`);
  return path;
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= tolerance * Math.max(1, Math.abs(expected[i]!)))) {
      throw new Error(`index ${i}: ${actual[i]} vs ${expected[i]} (tolerance ${tolerance})`);
    }
  }
}

export function values(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

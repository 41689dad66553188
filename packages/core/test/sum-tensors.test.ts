import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { sumTensors } from '../src/ops/sum-tensors.js';
import { expectClose, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('sumTensors', () => {
  for (const count of [1, 4, 5, 39]) {
    it(`adds ${count} tensors like one addN, leaving none behind`, () => {
      const tensors = Array.from({ length: count }, (_, i) => tf.tensor2d(randomArray(6, i + 1), [2, 3]));
      const before = tf.memory().numTensors;
      const sum = sumTensors(tensors);
      expect(sum.shape).toEqual([2, 3]);
      const expected = new Float64Array(6);
      tensors.forEach((t) => t.dataSync().forEach((v, j) => (expected[j]! += v)));
      expectClose(sum.dataSync(), expected, 1e-5);
      sum.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose(tensors);
    });
  }

  it('refuses an empty list', () => {
    expect(() => sumTensors([])).toThrow('sumTensors needs at least one tensor.');
  });
});

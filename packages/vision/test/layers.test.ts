import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchNorm, LayerNorm } from '../src/models/layers.js';
import { expectClose, values } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('BatchNorm', () => {
  it('normalises with batch statistics in training mode and updates the running statistics', () => {
    const bn = new BatchNorm(2, 0.5);
    const x = tf.tensor4d([1, 10, 3, 20, 5, 30, 7, 40], [2, 2, 1, 2]); // channel 0: 1 3 5 7, channel 1: 10..40
    const y = bn.apply(x, true);
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    expectClose(values(mean), [0, 0], 1e-5);
    expectClose(values(variance), [1, 1], 1e-3);
    // running = 0.5 * old + 0.5 * batch; the variance is the unbiased one (n - 1 = 3).
    expectClose(values(bn.runningMean), [0.5 * 4, 0.5 * 25], 1e-5);
    expectClose(values(bn.runningVar), [0.5 + 0.5 * (20 / 3), 0.5 + 0.5 * (500 / 3)], 1e-4);
  });

  it('uses the running statistics in inference mode and leaves them alone', () => {
    const bn = new BatchNorm(1);
    bn.runningMean.assign(tf.tensor1d([2]));
    bn.runningVar.assign(tf.tensor1d([4]));
    bn.gamma.assign(tf.tensor1d([3]));
    bn.beta.assign(tf.tensor1d([1]));
    const y = bn.apply(tf.tensor4d([2, 4, 6], [1, 3, 1, 1]), false);
    expectClose(values(y), [1, 1 + 3 * (2 / Math.sqrt(4 + 1e-5)), 1 + 3 * (4 / Math.sqrt(4 + 1e-5))], 1e-5);
    expectClose(values(bn.runningMean), [2]);
    expectClose(values(bn.runningVar), [4]);
    // Inference output does not depend on the other examples in the batch.
    const alone = bn.apply(tf.tensor4d([6], [1, 1, 1, 1]), false);
    expectClose(values(alone), [values(y)[2]!], 1e-6);
  });

  it('marks the running statistics non-trainable and saves them', () => {
    const bn = new BatchNorm(3);
    const vars = bn.variables();
    expect([...vars.keys()]).toEqual(['gamma', 'beta', 'running_mean', 'running_var']);
    expect([...vars.values()].map((v) => v.trainable)).toEqual([true, true, false, false]);
  });

  it('rejects a bad momentum', () => {
    expect(() => new BatchNorm(3, 0)).toThrow('batch-norm momentum must be in (0, 1], got 0.');
  });
});

describe('LayerNorm', () => {
  it('normalises the last axis', () => {
    const y = new LayerNorm(4).apply(tf.tensor2d([1, 2, 3, 4, 10, 10, 10, 14], [2, 4]));
    const { mean, variance } = tf.moments(y, 1);
    expectClose(values(mean), [0, 0], 1e-5);
    expectClose(values(variance), [1, 1], 1e-3);
  });
});

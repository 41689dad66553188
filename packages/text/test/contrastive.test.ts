import * as tf from '@tensorflow/tfjs';
import { createRandom } from '@mrl/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InBatchContrastiveObjective } from '../src/contrastive.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function unit(row: number[]): number[] {
  const n = Math.hypot(...row);
  return row.map((x) => x / n);
}

function dot(a: number[], b: number[]): number {
  return a.reduce((s, x, i) => s + x * b[i]!, 0);
}

/** Cross-entropy of picking `target` among `scores`, in float64 loops. */
function crossEntropy(scores: number[], target: number): number {
  const max = Math.max(...scores);
  const lse = max + Math.log(scores.reduce((s, x) => s + Math.exp(x - max), 0));
  return lse - scores[target]!;
}

describe('InBatchContrastiveObjective with hard negatives', () => {
  it('ranks each query against every positive and every hard negative of the batch, per prefix', () => {
    const random = createRandom(3);
    const n = 4;
    const d = 6;
    const rand = () => Array.from({ length: n }, () => Array.from({ length: d }, () => random() * 2 - 1));
    const [q, p, neg] = [rand(), rand(), rand()];
    const objective = new InBatchContrastiveObjective(0.1, true);
    const dims = [2, 6];
    const losses = tf.tidy(() =>
      objective
        .prefixLosses(tf.tensor2d(q), dims, { documents: tf.tensor2d(p), negatives: tf.tensor2d(neg) })
        .map((l) => l.dataSync()[0]!),
    );
    dims.forEach((m, j) => {
      const cut = (rows: number[][]) => rows.map((r) => unit(r.slice(0, m)));
      const [qm, pm, nm] = [cut(q), cut(p), cut(neg)];
      let forward = 0;
      let backward = 0;
      for (let i = 0; i < n; i++) {
        forward += crossEntropy(
          [...pm, ...nm].map((c) => dot(qm[i]!, c) / 0.1),
          i,
        );
        backward += crossEntropy(
          qm.map((c) => dot(pm[i]!, c) / 0.1),
          i,
        );
      }
      expect(losses[j]!).toBeCloseTo((forward / n + backward / n) / 2, 4);
    });
  });

  it('refuses a negatives batch that does not pair up with the queries', () => {
    expect(() =>
      tf.tidy(() =>
        new InBatchContrastiveObjective().prefixLosses(tf.ones([3, 4]), [4], {
          documents: tf.ones([3, 4]),
          negatives: tf.ones([2, 4]),
        }),
      ),
    ).toThrow(/got 3 queries but 2 hard negatives/);
  });
});

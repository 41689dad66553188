import * as tf from '@tensorflow/tfjs';
import { MatryoshkaLoss, MrlError } from '@mrl/core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ClipContrastiveObjective,
  contrastiveLabels,
  contrastiveLogits,
  INIT_LOGIT_SCALE,
  MAX_LOGIT_SCALE,
} from '../src/loss.js';
import { expectClose, seeded } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The CLIP loss in plain JS, in float64, written from the paper's pseudo-code. */
function referenceLoss(images: number[][], texts: number[][], m: number, scale: number): number {
  const norm = (v: number[]): number[] => {
    const p = v.slice(0, m);
    const n = Math.sqrt(p.reduce((s, x) => s + x * x, 0));
    return p.map((x) => x / n);
  };
  const a = images.map(norm);
  const b = texts.map(norm);
  const n = a.length;
  const logits = a.map((ai) => b.map((bj) => scale * ai.reduce((s, x, k) => s + x * bj[k]!, 0)));
  const ce = (rows: number[][]): number =>
    rows.reduce((sum, row, i) => {
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
      return sum + lse - row[i]!;
    }, 0) / n;
  const transposed = logits[0]!.map((_, j) => logits.map((row) => row[j]!));
  return (ce(logits) + ce(transposed)) / 2;
}

function randomMatrix(rows: number, cols: number, seed: number): number[][] {
  const r = seeded(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => r() * 2 - 1));
}

function lossesOf(
  objective: ClipContrastiveObjective,
  images: number[][],
  texts: number[][],
  dims: number[],
): number[] {
  return tf.tidy(() =>
    objective.prefixLosses(tf.tensor2d(images), dims, { texts: tf.tensor2d(texts) }).map((l) => l.dataSync()[0]!),
  );
}

describe('ClipContrastiveObjective', () => {
  const images = randomMatrix(6, 8, 1);
  const texts = randomMatrix(6, 8, 2);
  const dims = [2, 4, 8];

  it('equals an independent plain-JS computation at every prefix', () => {
    const objective = new ClipContrastiveObjective();
    const got = lossesOf(objective, images, texts, dims);
    expectClose(
      got,
      dims.map((m) => referenceLoss(images, texts, m, INIT_LOGIT_SCALE)),
      1e-4,
      1e-4,
    );
    objective.dispose();
  });

  it('is symmetric: swapping image and text embeddings gives the same loss', () => {
    const objective = new ClipContrastiveObjective({ initScale: 5 });
    expectClose(lossesOf(objective, texts, images, dims), lossesOf(objective, images, texts, dims), 1e-6, 1e-5);
    objective.dispose();
  });

  it('gives log N for a batch of identical pairs, whatever the temperature', () => {
    // Every image and every caption is the same vector, so every logit is scale * 1 and each
    // softmax is uniform over the N = 4 candidates: CE = -log(1/4) = log 4 = 1.386294 both ways.
    const same = Array.from({ length: 4 }, () => [0.6, -0.8, 0, 0]);
    for (const initScale of [1, INIT_LOGIT_SCALE]) {
      const objective = new ClipContrastiveObjective({ initScale });
      expectClose(lossesOf(objective, same, same, [2, 4]), [1.386294, 1.386294], 1e-5);
      objective.dispose();
    }
  });

  it('gives the hand-computed loss for two orthogonal pairs', () => {
    // Pairs (e1, e1) and (e2, e2), scale 2: logits [[2, 0], [0, 2]]; each row's CE is
    // log(e^2 + 1) - 2 = 0.126928, the same for columns.
    const objective = new ClipContrastiveObjective({ initScale: 2 });
    expectClose(
      lossesOf(
        objective,
        [
          [1, 0],
          [0, 1],
        ],
        [
          [1, 0],
          [0, 1],
        ],
        [2],
      ),
      [Math.log(Math.exp(2) + 1) - 2],
      1e-5,
    );
    objective.dispose();
  });

  it('matches finite differences in the temperature gradient', () => {
    const objective = new ClipContrastiveObjective({ initScale: 3 });
    const x = tf.tensor2d(images);
    const y = tf.tensor2d(texts);
    const total = (): tf.Scalar => tf.addN(objective.prefixLosses(x, dims, { texts: y })) as tf.Scalar;
    const { grads } = tf.variableGrads(total, [objective.logScale]);
    const analytic = grads[objective.logScale.name]!.dataSync()[0]!;
    const at = (value: number): number => {
      objective.logScale.assign(tf.scalar(value));
      return tf.tidy(() => total().dataSync()[0]!);
    };
    const h = 1e-2;
    const base = Math.log(3);
    const numeric = (at(base + h) - at(base - h)) / (2 * h);
    // The float64 reference gives the same derivative.
    const ref = (referenceLossSum(base + 1e-5) - referenceLossSum(base - 1e-5)) / 2e-5;
    function referenceLossSum(logScale: number): number {
      return dims.reduce((s, m) => s + referenceLoss(images, texts, m, Math.exp(logScale)), 0);
    }
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
    expectClose(analytic, numeric, 1e-3, 1e-2);
    expectClose(analytic, ref, 1e-4, 1e-3);
    tf.dispose([x, y, grads[objective.logScale.name]!]);
    objective.dispose();
  });

  it('clamps the logit scale at 100 and stops its gradient there', async () => {
    const objective = new ClipContrastiveObjective();
    objective.logScale.assign(tf.scalar(Math.log(500)));
    expect(await objective.scaleValue()).toBeCloseTo(MAX_LOGIT_SCALE, 3);
    const x = tf.tensor2d(images);
    const y = tf.tensor2d(texts);
    const { grads } = tf.variableGrads(
      () => tf.addN(objective.prefixLosses(x, [8], { texts: y })) as tf.Scalar,
      [objective.logScale],
    );
    expect(grads[objective.logScale.name]!.dataSync()[0]).toBe(0);
    expectClose(lossesOf(objective, images, texts, [8]), [referenceLoss(images, texts, 8, 100)], 1e-4, 1e-4);
    tf.dispose([x, y, grads[objective.logScale.name]!]);
    objective.dispose();
  });

  it('is summed with the nesting weights by MatryoshkaLoss, temperature included in its variables', () => {
    const objective = new ClipContrastiveObjective();
    const loss = new MatryoshkaLoss(objective, { embeddingDim: 8, dims, weights: [1, 0.5, 2] });
    const value = tf.tidy(() => {
      const v = loss.compute(tf.tensor2d(images), { texts: tf.tensor2d(texts) });
      return { total: v.total.dataSync()[0]!, parts: Object.keys(v.parts) };
    });
    const expected = [1, 0.5, 2].reduce(
      (s, w, i) => s + w * referenceLoss(images, texts, dims[i]!, INIT_LOGIT_SCALE),
      0,
    );
    expectClose(value.total, expected, 1e-4, 1e-4);
    expect(value.parts).toEqual(['loss/2', 'loss/4', 'loss/8']);
    expect([...loss.variables().keys()]).toEqual(['logit_scale']);
    objective.dispose();
  });

  it('keeps logits() and labels() separate: labels are the diagonal', () => {
    const labels = contrastiveLabels(3);
    expect(Array.from(labels.dataSync())).toEqual([0, 1, 2]);
    const scale = tf.scalar(1);
    const logits = contrastiveLogits(tf.tensor2d([[3, 4]]), tf.tensor2d([[3, 4]]), 2, scale);
    expectClose(logits.dataSync(), [1], 1e-6);
    tf.dispose([labels, scale, logits]);
  });

  it('rejects unpaired batches, naming both counts', () => {
    const objective = new ClipContrastiveObjective();
    expect(() => lossesOf(objective, images, texts.slice(0, 5), [8])).toThrow(
      'got 6 image embeddings but 5 text embeddings; they must pair up row by row.',
    );
    objective.dispose();
  });

  it('rejects a clamp below the initial scale', () => {
    expect(() => new ClipContrastiveObjective({ initScale: 10, maxScale: 5 })).toThrow(MrlError);
    expect(() => new ClipContrastiveObjective({ initScale: 10, maxScale: 5 })).toThrow(
      'maxScale 5 is below initScale 10.',
    );
    expect(() => new ClipContrastiveObjective({ initScale: 0 })).toThrow(
      'initScale must be a finite number > 0, got 0.',
    );
  });
});

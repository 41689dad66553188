import { describe, expect, it } from 'vitest';
import { evaluateCascade, runCascade, type CascadeInput } from '../src/cascade.js';
import { tuneCascadeThresholds } from '../src/cascade-tuning.js';
import { predictionConfidence } from '../src/confidence.js';
import { gaussian, rng } from './synthetic.js';

const C = 10;
const dims = [8, 16, 32, 64];

/** Logits whose signal grows with the dim, so bigger prefixes are more accurate. */
function makeSplit(n: number, seed: number): { input: CascadeInput; labels: Int32Array } {
  const g = gaussian(rng(seed));
  const rand = rng(seed + 1);
  const labels = Int32Array.from({ length: n }, () => Math.floor(rand() * C));
  const difficulty = Float64Array.from({ length: n }, () => rand());
  const scores = dims.map((_, s) => {
    const x = new Float32Array(n * C);
    for (let i = 0; i < n; i++) {
      const signal = (0.5 + 0.5 * s) * (1.5 - (difficulty[i] as number));
      for (let c = 0; c < C; c++) x[i * C + c] = g() + (c === labels[i] ? 2 * signal : 0);
    }
    return x;
  });
  return { input: { dims, scores, numClasses: C }, labels };
}

const val = makeSplit(2000, 3);
const test = makeSplit(2000, 99);

describe('predictionConfidence', () => {
  it('softmax max-prob and margin on a known row', () => {
    const logits = new Float32Array([2, 0, 0]);
    const e = Math.exp(2) + 2;
    expect(predictionConfidence(logits, 3, 'max-prob').confidence[0]).toBeCloseTo(Math.exp(2) / e, 12);
    expect(predictionConfidence(logits, 3, 'margin').confidence[0]).toBeCloseTo((Math.exp(2) - 1) / e, 12);
  });

  it('reads probabilities as given', () => {
    const r = predictionConfidence(new Float32Array([0.1, 0.6, 0.3]), 3, 'margin', 'probabilities');
    expect(r.predictions[0]).toBe(1);
    expect(r.confidence[0]).toBeCloseTo(0.3, 6);
  });

  it('names the example with NaN scores', () => {
    expect(() => predictionConfidence(new Float32Array([0, 1, 0, Number.NaN]), 2)).toThrow(
      /example 1 contain NaN \(class 1\)/,
    );
  });
});

describe('runCascade / evaluateCascade', () => {
  it('threshold 0 stops every example at the first dim', () => {
    const ev = evaluateCascade(val.input, val.labels, [0, 0, 0]);
    expect(ev.expectedDim).toBe(8);
    expect(ev.histogram.map((h) => h.count)).toEqual([2000, 0, 0, 0]);
    expect(ev.accuracy).toBe(ev.accuracyPerDim[0]);
  });

  it('threshold 1 sends every example to the last dim', () => {
    for (const confidence of ['max-prob', 'margin'] as const) {
      const ev = evaluateCascade(val.input, val.labels, [1, 1, 1], { confidence });
      expect(ev.expectedDim).toBe(64);
      expect(ev.histogram[3]!.fraction).toBe(1);
      expect(ev.accuracy).toBe(ev.accuracyPerDim[3]);
    }
  });

  it('later dims are more accurate on this data (sanity of the fixture)', () => {
    const acc = evaluateCascade(val.input, val.labels, [0, 0, 0]).accuracyPerDim;
    expect(acc[3]!).toBeGreaterThan(acc[0]! + 0.2);
  });

  it('a middle threshold spreads examples and the histogram adds up', () => {
    const run = runCascade(val.input, [0.6, 0.6, 0.6]);
    const ev = evaluateCascade(val.input, val.labels, [0.6, 0.6, 0.6]);
    expect(ev.histogram.reduce((a, h) => a + h.count, 0)).toBe(2000);
    expect(ev.histogram.every((h) => h.count > 0)).toBe(true);
    const mean = Array.from(run.stopDim).reduce((a, b) => a + b, 0) / 2000;
    expect(ev.expectedDim).toBeCloseTo(mean, 10);
  });

  it('names a wrong threshold count', () => {
    expect(() => runCascade(val.input, [0.5])).toThrow(
      /a cascade over 4 dims takes 3 thresholds \(the last dim always answers\), got 1/,
    );
  });

  it('names a negative threshold', () => {
    expect(() => runCascade(val.input, [0.5, -1, 0.5])).toThrow(/cascade thresholds\[1\] must be >= 0/);
  });

  it('names non-increasing dims', () => {
    expect(() => runCascade({ ...val.input, dims: [8, 8, 32, 64] }, [0, 0, 0])).toThrow(
      /cascade dims must be strictly increasing: dims\[1\] = 8 is not greater than dims\[0\] = 8/,
    );
  });
});

describe('tuneCascadeThresholds', () => {
  it.each([
    ['max-prob', { targetAccuracy: 0.85 }],
    ['margin', { targetAccuracy: 0.85 }],
    ['max-prob', { maxAccuracyDrop: 0.01 }],
    ['margin', { maxAccuracyDrop: 0.0 }],
  ] as const)('%s %j meets the target on validation and saves dims', (confidence, target) => {
    const tuned = tuneCascadeThresholds(val.input, val.labels, target, { confidence });
    expect(tuned.met).toBe(true);
    expect(tuned.validation.accuracy).toBeGreaterThanOrEqual(tuned.targetAccuracy);
    const again = evaluateCascade(val.input, val.labels, tuned.thresholds, { confidence });
    expect(again.accuracy).toBe(tuned.validation.accuracy);
    expect(again.expectedDim).toBeLessThan(64);
    // On a fresh split from the same distribution the accuracy stays close to the target.
    const onTest = evaluateCascade(test.input, test.labels, tuned.thresholds, { confidence });
    expect(onTest.accuracy).toBeGreaterThan(tuned.targetAccuracy - 0.03);
  });

  it('maxAccuracyDrop is measured from the last dim alone', () => {
    const tuned = tuneCascadeThresholds(val.input, val.labels, { maxAccuracyDrop: 0.02 });
    expect(tuned.targetAccuracy).toBeCloseTo(tuned.validation.accuracyPerDim[3]! - 0.02, 12);
  });

  it('reports an unreachable target with met = false and every example at the last dim', () => {
    const tuned = tuneCascadeThresholds(val.input, val.labels, { targetAccuracy: 0.9999 });
    expect(tuned.met).toBe(false);
    expect(tuned.thresholds).toEqual([Infinity, Infinity, Infinity]);
    expect(tuned.validation.expectedDim).toBe(64);
  });

  it('a lower target never costs more dims', () => {
    const strict = tuneCascadeThresholds(val.input, val.labels, { targetAccuracy: 0.9 });
    const loose = tuneCascadeThresholds(val.input, val.labels, { targetAccuracy: 0.7 });
    expect(loose.validation.expectedDim).toBeLessThanOrEqual(strict.validation.expectedDim);
  });

  it('needs exactly one target', () => {
    expect(() => tuneCascadeThresholds(val.input, val.labels, {} as never)).toThrow(
      /exactly one of targetAccuracy and maxAccuracyDrop/,
    );
    expect(() => tuneCascadeThresholds(val.input, val.labels, { targetAccuracy: 1.5 })).toThrow(
      /targetAccuracy must be in \[0, 1\], got 1.5/,
    );
  });
});

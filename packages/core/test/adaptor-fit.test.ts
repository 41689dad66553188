import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compareByDim,
  comparisonRows,
  formatComparison,
  type MethodMetrics,
  shorteningMethods,
} from '../src/adaptor/compare.js';
import { applyPca, fitPca, symmetricEigen } from '../src/adaptor/pca.js';
import type { Rows } from '../src/adaptor/rows.js';
import { fitAdaptor } from '../src/adaptor/train.js';
import { initBackend } from '@mrl/kernels';
import { createRandom, type Random } from '../src/rng.js';
import { expectClose } from './helpers/close.js';

function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Rows of an orthonormal [r, d] basis (Gram-Schmidt of Gaussian rows): a random r-dim subspace. */
function randomBasis(r: number, d: number, random: Random): number[][] {
  const basis: number[][] = [];
  while (basis.length < r) {
    const v = Array.from({ length: d }, () => gaussian(random));
    for (const b of basis) {
      const dot = v.reduce((s, x, i) => s + x * b[i]!, 0);
      for (let i = 0; i < d; i++) v[i]! -= dot * b[i]!;
    }
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    basis.push(v.map((x) => x / norm));
  }
  return basis;
}

/**
 * Class structure in a random r-dim subspace spread over all d coordinates, plus isotropic noise:
 * no coordinate prefix holds the signal, the right rotation puts it in the first r dims.
 */
function lowRankData(
  rows: number,
  d: number,
  r: number,
  classes: number,
  seed: number,
): { train: Rows; trainLabels: Int32Array; test: Rows; testLabels: Int32Array } {
  const random = createRandom(seed);
  const basis = randomBasis(r, d, random);
  const centres = Array.from({ length: classes }, () => Array.from({ length: r }, () => 2 * gaussian(random)));
  const make = (n: number): { rows: Rows; labels: Int32Array } => {
    const data = new Float32Array(n * d);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = Math.floor(random() * classes);
      labels[i] = c;
      const s = centres[c]!.map((x) => x + 0.7 * gaussian(random));
      for (let j = 0; j < d; j++) {
        let v = 0.25 * gaussian(random);
        for (let k = 0; k < r; k++) v += s[k]! * basis[k]![j]!;
        data[i * d + j] = v;
      }
    }
    return { rows: { data, rows: n, dim: d }, labels };
  };
  const train = make(rows);
  const test = make(Math.floor(rows / 4));
  return { train: train.rows, trainLabels: train.labels, test: test.rows, testLabels: test.labels };
}

describe('PCA', () => {
  it('decomposes a symmetric matrix: A V = V diag(values), V orthogonal', () => {
    const n = 9;
    const random = createRandom(5);
    const b = Array.from({ length: n * n }, () => gaussian(random));
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = b[i * n + j]! + b[j * n + i]!;
    const { values, vectors } = symmetricEigen(a, n);
    const av: number[] = [];
    const vl: number[] = [];
    const vtv: number[] = [];
    const identity: number[] = [];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let t = 0;
        for (let k = 0; k < n; k++) {
          s += a[i * n + k]! * vectors[k * n + j]!;
          t += vectors[k * n + i]! * vectors[k * n + j]!;
        }
        av.push(s);
        vl.push(vectors[i * n + j]! * values[j]!);
        vtv.push(t);
        identity.push(i === j ? 1 : 0);
      }
    }
    expectClose(av, vl, 1e-10);
    expectClose(vtv, identity, 1e-10);
  });

  it('finds the variances of data with known axes, sorted, and rotates without changing distances', () => {
    const random = createRandom(8);
    const d = 6;
    const scales = [0.5, 3, 1, 0.2, 2, 0.1];
    const basis = randomBasis(d, d, random);
    const rows = 4000;
    const data = new Float32Array(rows * d);
    for (let i = 0; i < rows; i++) {
      const s = scales.map((sc) => sc * gaussian(random));
      for (let j = 0; j < d; j++) data[i * d + j] = 1 + s.reduce((acc, x, k) => acc + x * basis[k]![j]!, 0);
    }
    const pca = fitPca({ data, rows, dim: d });
    const expected = [...scales].sort((a, b) => b - a).map((s) => s * s);
    Array.from(pca.variances).forEach((v, i) => expect(Math.abs(v / expected[i]! - 1)).toBeLessThan(0.08));
    const rotated = applyPca(pca, { data, rows, dim: d });
    const dist = (x: Float32Array, a: number, b: number): number =>
      Math.hypot(...Array.from({ length: d }, (_, j) => x[a * d + j]! - x[b * d + j]!));
    for (const [a, b] of [
      [0, 1],
      [5, 900],
    ] as const)
      expect(dist(rotated.data, a, b)).toBeCloseTo(dist(data, a, b), 4);
  });
});

describe('a fitted adaptor on data with a known low-rank structure', () => {
  const d = 32;
  const r = 4;
  const dims = [4, 8, 16, 32];
  const { train, trainLabels, test, testLabels } = lowRankData(2000, d, r, 8, 11);

  beforeAll(async () => {
    await initBackend('wasm', { kernels: 'wasm' });
  });

  async function fitAndCompare(
    rotation: 'none' | 'pca',
  ): Promise<{ at: (method: string, m: number) => number; table: string; results: MethodMetrics[] }> {
    const tensorsBefore = tf.memory().numTensors;
    const { adaptor, fit } = await fitAdaptor({
      corpus: train,
      dims,
      epochs: 25,
      batchSize: 200,
      lr: 3e-3,
      rotation,
      seed: 1,
    });
    expect(fit.stopped).toBe(false);
    const weights = await adaptor.weights();
    adaptor.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const results = await compareByDim({
      database: train,
      databaseLabels: trainLabels,
      queries: test,
      queryLabels: testLabels,
      dims,
      transforms: shorteningMethods(train, weights),
    });
    const at = (method: string, m: number): number =>
      results.find((x) => x.method === method)!.metrics.find((x) => x.dim === m)!.nnTop1;
    return { at, table: formatComparison(results, 'classification'), results };
  }

  it('moves the hidden subspace into its first dims from the identity: far above truncation, near PCA', async () => {
    const { at, table, results } = await fitAndCompare('none');
    const full = at('truncation', d);
    // Full-dim: PCA is a rotation (same cosines after centring); the adaptor keeps them closely.
    expect(at('pca', d)).toBeCloseTo(full, 6);
    expect(Math.abs(at('adaptor', d) - full), table).toBeLessThan(0.03);
    // At m = r the signal must have moved into the prefix: truncation keeps about r/d of it.
    expect(at('adaptor', r) - at('truncation', r), table).toBeGreaterThan(0.2);
    expect(at('adaptor', r), table).toBeGreaterThan(full - 0.03);
    // PCA is the optimal linear map for a linear subspace under isotropic noise; the adaptor,
    // which imitates the full-dim (noisy) similarities, comes within 3 points of it.
    expect(at('adaptor', r), table).toBeGreaterThan(at('pca', r) - 0.03);
    const rows = comparisonRows(results);
    expect(rows.map((x) => x.dim)).toEqual(dims);
    expect(Object.keys(rows[0]!)).toEqual(['dim', 'truncation', 'pca', 'adaptor']);
    expect(table.split('\n')[0]).toMatch(/^dim\s+truncation 1-NN %\s+pca 1-NN %\s+adaptor 1-NN %$/);
  });

  it('matches PCA within a point when started from the PCA rotation', async () => {
    const { at, table } = await fitAndCompare('pca');
    for (const m of [r, 2 * r]) {
      expect(at('adaptor', m) - at('truncation', m), table).toBeGreaterThan(m === r ? 0.2 : 0.05);
      expect(at('adaptor', m), table).toBeGreaterThanOrEqual(at('pca', m) - 0.01);
    }
  });
});

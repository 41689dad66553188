import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MrlError } from '../src/errors.js';
import { SeparateHeads, SharedHead, runningSumPrefixLogits, slicedPrefixLogits } from '../src/heads.js';
import { MatryoshkaLoss } from '../src/matryoshka-loss.js';
import { ClassificationObjective } from '../src/objective.js';
import { createRandom } from '../src/rng.js';

interface Golden {
  n: number;
  d: number;
  classes: number;
  dims: number[];
  weights: number[];
  z: number[];
  labels: number[];
  separate: {
    losses: number[];
    total: number;
    grad_z: number[];
    weights: number[][];
    biases: number[][];
    grad_weights: number[][];
    grad_biases: number[][];
  };
  shared: {
    losses: number[];
    total: number;
    grad_z: number[];
    weight: number[];
    bias: number[];
    grad_weight: number[];
    grad_bias: number[];
  };
}

const golden = JSON.parse(readFileSync(new URL('./fixtures/golden_mrl.json', import.meta.url), 'utf8')) as Golden;

function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]!));
    if (Math.abs(actual[i]! - expected[i]!) > tol * scale) {
      throw new Error(`index ${i}: ${actual[i]} differs from ${expected[i]} by more than ${tol * scale}`);
    }
  }
}

/** Cross-entropy of z[:, :m] @ W[:m] + b in plain float64 loops: an independent reference. */
function referenceLoss(
  z: Float32Array,
  n: number,
  d: number,
  m: number,
  w: ArrayLike<number>,
  wRows: number,
  b: ArrayLike<number>,
  c: number,
  labels: number[],
): number {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const logits = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      let acc = b[k]!;
      for (let j = 0; j < m; j++) acc += z[i * d + j]! * w[j * c + k]!;
      logits[k] = acc;
    }
    const max = Math.max(...logits);
    let denom = 0;
    for (const l of logits) denom += Math.exp(l - max);
    sum += -(logits[labels[i]!]! - max - Math.log(denom));
  }
  void wRows;
  return sum / n;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('MatryoshkaLoss', () => {
  it('equals an independent per-prefix loop for separate heads (1e-5)', () => {
    const random = createRandom(7);
    const n = 16;
    const d = 32;
    const c = 6;
    const dims = [8, 16, 32];
    const weights = [0.5, 1, 2];
    const head = new SeparateHeads(d, c, dims, random);
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d, weights });
    const zData = Float32Array.from({ length: n * d }, () => random() * 2 - 1);
    const labels = Array.from({ length: n }, () => Math.floor(random() * c));
    const z = tf.tensor2d(zData, [n, d]);
    const y = tf.tensor1d(labels, 'int32');
    const { total, parts } = loss.compute(z, { labels: y });
    let expectedTotal = 0;
    dims.forEach((m, j) => {
      const vars = head.variables();
      const expected = referenceLoss(
        zData,
        n,
        d,
        m,
        vars.get(`w${m}`)!.dataSync(),
        m,
        vars.get(`b${m}`)!.dataSync(),
        c,
        labels,
      );
      expect(Math.abs(parts[`loss/${m}`]!.dataSync()[0]! - expected)).toBeLessThan(1e-5);
      expectedTotal += weights[j]! * expected;
    });
    expect(Math.abs(total.dataSync()[0]! - expectedTotal)).toBeLessThan(1e-5);
  });

  it('equals an independent per-prefix loop for the shared MRL-E head, in both forms (1e-5)', () => {
    const random = createRandom(8);
    const n = 10;
    const d = 20;
    const c = 4;
    const dims = [5, 10, 20];
    for (const form of ['fused', 'running-sum', 'sliced'] as const) {
      const head = new SharedHead(d, c, createRandom(3), form);
      const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d, dims });
      const zData = Float32Array.from({ length: n * d }, () => random() * 2 - 1);
      const labels = Array.from({ length: n }, () => Math.floor(random() * c));
      const { total, parts } = loss.compute(tf.tensor2d(zData, [n, d]), { labels: tf.tensor1d(labels, 'int32') });
      let expectedTotal = 0;
      for (const m of dims) {
        const expected = referenceLoss(zData, n, d, m, head.weight.dataSync(), d, head.bias.dataSync(), c, labels);
        expect(Math.abs(parts[`loss/${m}`]!.dataSync()[0]! - expected)).toBeLessThan(1e-5);
        expectedTotal += expected;
      }
      expect(Math.abs(total.dataSync()[0]! - expectedTotal)).toBeLessThan(1e-5);
    }
  });

  it('running sums give the same prefix logits as per-prefix products', () => {
    const random = createRandom(9);
    const z = tf.tensor2d(
      Float32Array.from({ length: 8 * 64 }, () => random() - 0.5),
      [8, 64],
    );
    const w = tf.tensor2d(
      Float32Array.from({ length: 64 * 7 }, () => random() - 0.5),
      [64, 7],
    );
    const b = tf.tensor1d(Float32Array.from({ length: 7 }, () => random() - 0.5));
    const dims = [8, 16, 32, 64];
    const sliced = slicedPrefixLogits(z, w, b, dims);
    const running = runningSumPrefixLogits(z, w, b, dims);
    dims.forEach((_, j) => expectAllClose(running[j]!.dataSync(), sliced[j]!.dataSync(), 1e-5));
    const noBias = runningSumPrefixLogits(z, w, null, [64]);
    expectAllClose(noBias[0]!.dataSync(), tf.matMul(z, w).dataSync(), 1e-5);
  });

  it('matches PyTorch golden values and gradients for separate heads', () => {
    const head = new SeparateHeads(golden.d, golden.classes, golden.dims, createRandom(0));
    const vars = head.variables();
    golden.dims.forEach((m, j) => {
      vars.get(`w${m}`)!.assign(tf.tensor2d(golden.separate.weights[j]!, [m, golden.classes]));
      vars.get(`b${m}`)!.assign(tf.tensor1d(golden.separate.biases[j]!));
    });
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), {
      embeddingDim: golden.d,
      dims: golden.dims,
      weights: golden.weights,
    });
    const z = tf.tensor2d(golden.z, [golden.n, golden.d]);
    const labels = tf.tensor1d(golden.labels, 'int32');
    const { total, parts } = loss.compute(z, { labels });
    expect(Math.abs(total.dataSync()[0]! - golden.separate.total)).toBeLessThan(1e-5);
    golden.dims.forEach((m, j) =>
      expect(Math.abs(parts[`loss/${m}`]!.dataSync()[0]! - golden.separate.losses[j]!)).toBeLessThan(1e-5),
    );

    const gradZ = tf.grad((x: tf.Tensor) => loss.compute(x as tf.Tensor2D, { labels }).total)(z);
    expectAllClose(gradZ.dataSync(), golden.separate.grad_z, 1e-5);
    const { grads } = tf.variableGrads(() => loss.compute(z, { labels }).total, [...vars.values()]);
    golden.dims.forEach((m, j) => {
      expectAllClose(grads[vars.get(`w${m}`)!.name]!.dataSync(), golden.separate.grad_weights[j]!, 1e-5);
      expectAllClose(grads[vars.get(`b${m}`)!.name]!.dataSync(), golden.separate.grad_biases[j]!, 1e-5);
    });
  });

  it('matches PyTorch golden values and gradients for the MRL-E shared head (both forms)', () => {
    for (const form of ['fused', 'running-sum', 'sliced'] as const) {
      const head = new SharedHead(golden.d, golden.classes, createRandom(0), form);
      head.weight.assign(tf.tensor2d(golden.shared.weight, [golden.d, golden.classes]));
      head.bias.assign(tf.tensor1d(golden.shared.bias));
      const loss = new MatryoshkaLoss(new ClassificationObjective(head), {
        embeddingDim: golden.d,
        dims: golden.dims,
        weights: golden.weights,
      });
      const z = tf.tensor2d(golden.z, [golden.n, golden.d]);
      const labels = tf.tensor1d(golden.labels, 'int32');
      const { total, parts } = loss.compute(z, { labels });
      expect(Math.abs(total.dataSync()[0]! - golden.shared.total)).toBeLessThan(1e-5);
      golden.dims.forEach((m, j) =>
        expect(Math.abs(parts[`loss/${m}`]!.dataSync()[0]! - golden.shared.losses[j]!)).toBeLessThan(1e-5),
      );
      const gradZ = tf.grad((x: tf.Tensor) => loss.compute(x as tf.Tensor2D, { labels }).total)(z);
      expectAllClose(gradZ.dataSync(), golden.shared.grad_z, 1e-5);
      const { grads } = tf.variableGrads(() => loss.compute(z, { labels }).total, [head.weight, head.bias]);
      expectAllClose(grads[head.weight.name]!.dataSync(), golden.shared.grad_weight, 1e-5);
      expectAllClose(grads[head.bias.name]!.dataSync(), golden.shared.grad_bias, 1e-5);
    }
  });

  it.each(['fused', 'sliced'] as const)(
    '%s shared head: gradient with respect to the embedding matches central finite differences',
    (form) => {
      const random = createRandom(11);
      const n = 4;
      const d = 8;
      const head = new SharedHead(d, 3, random, form);
      const loss = new MatryoshkaLoss(new ClassificationObjective(head), {
        embeddingDim: d,
        dims: [2, 4, 8],
        weights: [1, 2, 3],
      });
      const base = Float64Array.from({ length: n * d }, () => random() - 0.5);
      const labels = tf.tensor1d([0, 1, 2, 1], 'int32');
      const f = (values: ArrayLike<number>): number =>
        tf.tidy(() => loss.compute(tf.tensor2d(Float32Array.from(values), [n, d]), { labels }).total.dataSync()[0]!);
      const analytic = tf
        .grad((x: tf.Tensor) => loss.compute(x as tf.Tensor2D, { labels }).total)(
          tf.tensor2d(Float32Array.from(base), [n, d]),
        )
        .dataSync();
      const eps = 1e-2;
      expect(analytic.length).toBe(base.length);
      for (let i = 0; i < base.length; i++) {
        const plus = Float64Array.from(base);
        const minus = Float64Array.from(base);
        plus[i]! += eps;
        minus[i]! -= eps;
        const numeric = (f(plus) - f(minus)) / (2 * eps);
        expect(Math.abs(analytic[i]! - numeric)).toBeLessThan(2e-3);
      }
    },
  );

  it('samples dimsPerStep dims per step, always keeping the full dim, reproducibly', () => {
    const head = new SharedHead(64, 3, createRandom(1));
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: 64, dimsPerStep: 2 });
    const z = tf.randomNormal([4, 64], 0, 1, 'float32', 1) as tf.Tensor2D;
    const labels = tf.tensor1d([0, 1, 2, 0], 'int32');
    const seen = new Set<number>();
    for (let step = 0; step < 20; step++) {
      const a = loss.compute(z, { labels }, createRandom(5, step));
      const b = loss.compute(z, { labels }, createRandom(5, step));
      expect(a.dims).toEqual(b.dims);
      expect(a.dims).toHaveLength(2);
      expect(a.dims.at(-1)).toBe(64);
      seen.add(a.dims[0]!);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(loss.compute(z, { labels }).dims).toEqual([8, 16, 32, 64]);
  });

  it('rejects an embedding narrower than the largest nesting dim', () => {
    const loss = new MatryoshkaLoss(new ClassificationObjective(new SharedHead(16, 3, createRandom(1))), {
      embeddingDim: 16,
    });
    expect(() => loss.compute(tf.zeros([2, 8]) as tf.Tensor2D, { labels: tf.tensor1d([0, 1], 'int32') })).toThrow(
      'embedding has 8 dims but the largest nesting dim is 16.',
    );
  });

  it('rejects a bad dimsPerStep', () => {
    const objective = new ClassificationObjective(new SharedHead(16, 3, createRandom(1)));
    expect(() => new MatryoshkaLoss(objective, { embeddingDim: 16, dimsPerStep: 0 })).toThrow(
      'dimsPerStep must be a positive integer, got 0.',
    );
    try {
      new MatryoshkaLoss(objective, { embeddingDim: 16, dimsPerStep: 1.5 });
      expect.unreachable();
    } catch (e) {
      expect(MrlError.is(e) && e.kind).toBe('invalid-argument');
    }
  });

  it('heads reject nesting dims beyond their embedding size', () => {
    expect(() => new SeparateHeads(16, 3, [8, 32], createRandom(1))).toThrow(
      "nesting dim 32 is larger than the head's embedding size 16.",
    );
    const shared = new SharedHead(16, 3, createRandom(1));
    expect(() => shared.logits(tf.zeros([1, 16]) as tf.Tensor2D, [32])).toThrow(
      "nesting dim 32 is larger than the head's embedding size 16.",
    );
    expect(() => new SharedHead(16, 1, createRandom(1))).toThrow('head numClasses must be an integer >= 2, got 1.');
    expect(() => new SharedHead(0, 3, createRandom(1))).toThrow('head embeddingDim must be a positive integer, got 0.');
  });
});

describe('stackedPrefixLogits (fused shared head)', () => {
  it('running sums have the gradients of per-prefix products, in both weight layouts and with dims short of d', () => {
    const random = createRandom(10);
    const z = tf.tensor2d(
      Float32Array.from({ length: 5 * 24 }, () => random() - 0.5),
      [5, 24],
    );
    const w = tf.tensor2d(
      Float32Array.from({ length: 24 * 7 }, () => random() - 0.5),
      [24, 7],
    );
    const b = tf.tensor1d(Float32Array.from({ length: 7 }, () => random() - 0.5));
    const upstream = [1, 0.5, 2].map((scale) =>
      tf.mul(
        tf.tensor2d(
          Float32Array.from({ length: 5 * 7 }, () => random() - 0.5),
          [5, 7],
        ),
        scale,
      ),
    );
    const dims = [4, 8, 16]; // the last 8 dims of z and rows of w take part in no prefix
    const weighted = (logits: tf.Tensor2D[]): tf.Scalar =>
      tf.addN(logits.map((l, j) => tf.sum(tf.mul(l, upstream[j]!)))) as tf.Scalar;
    const reference = tf.grads((zz: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      weighted(slicedPrefixLogits(zz as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D, dims)),
    )([z, w, b]);
    const running = tf.grads((zz: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      weighted(runningSumPrefixLogits(zz as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D, dims)),
    )([z, w, b]);
    const classesFirst = tf.grads((zz: tf.Tensor, wt: tf.Tensor, bb: tf.Tensor) =>
      weighted(runningSumPrefixLogits(zz as tf.Tensor2D, wt as tf.Tensor2D, bb as tf.Tensor1D, dims, 'classes-first')),
    )([z, tf.transpose(w), b]);
    for (let i = 0; i < 3; i++) expectAllClose(running[i]!.dataSync(), reference[i]!.dataSync(), 1e-5);
    expectAllClose(classesFirst[0]!.dataSync(), reference[0]!.dataSync(), 1e-5);
    expectAllClose(tf.transpose(classesFirst[1]!).dataSync(), reference[1]!.dataSync(), 1e-5);
    expectAllClose(classesFirst[2]!.dataSync(), reference[2]!.dataSync(), 1e-5);
    expect(Array.from(running[1]!.dataSync().subarray(16 * 7))).toEqual(new Array(8 * 7).fill(0));
  });

  it('gradients of weight and bias match finite differences, also with dims short of d', () => {
    const random = createRandom(21);
    const n = 3;
    const d = 6;
    const c = 3;
    const dims = [2, 4];
    const zData = Float32Array.from({ length: n * d }, () => random() - 0.5);
    const wBase = Float64Array.from({ length: d * c }, () => random() - 0.5);
    const bBase = Float64Array.from({ length: c }, () => random() - 0.5);
    const labels = tf.tensor1d([2, 0, 1], 'int32');
    const z = tf.tensor2d(zData, [n, d]);
    const lossOf = (w: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const head = new SharedHead(d, c, createRandom(0), 'fused');
      head.weight.assign(w as tf.Tensor2D);
      head.bias.assign(b as tf.Tensor1D);
      const value = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d, dims }).compute(z, {
        labels,
      }).total;
      return value;
    };
    const f = (w: ArrayLike<number>, b: ArrayLike<number>): number =>
      tf.tidy(
        () => lossOf(tf.tensor2d(Float32Array.from(w), [d, c]), tf.tensor1d(Float32Array.from(b))).dataSync()[0]!,
      );
    const head = new SharedHead(d, c, createRandom(0), 'fused');
    head.weight.assign(tf.tensor2d(Float32Array.from(wBase), [d, c]));
    head.bias.assign(tf.tensor1d(Float32Array.from(bBase)));
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d, dims });
    const { grads } = tf.variableGrads(() => loss.compute(z, { labels }).total, [head.weight, head.bias]);
    const gw = grads[head.weight.name]!.dataSync();
    const gb = grads[head.bias.name]!.dataSync();
    const eps = 1e-2;
    for (let i = 0; i < wBase.length; i++) {
      const plus = Float64Array.from(wBase);
      const minus = Float64Array.from(wBase);
      plus[i]! += eps;
      minus[i]! -= eps;
      const numeric = (f(plus, bBase) - f(minus, bBase)) / (2 * eps);
      expect(Math.abs(gw[i]! - numeric)).toBeLessThan(2e-3);
    }
    // Rows of W past the largest nesting dim receive no gradient.
    for (let i = dims.at(-1)! * c; i < d * c; i++) expect(gw[i]).toBe(0);
    for (let i = 0; i < bBase.length; i++) {
      const plus = Float64Array.from(bBase);
      const minus = Float64Array.from(bBase);
      plus[i]! += eps;
      minus[i]! -= eps;
      const numeric = (f(wBase, plus) - f(wBase, minus)) / (2 * eps);
      expect(Math.abs(gb[i]! - numeric)).toBeLessThan(2e-3);
    }
  });
});

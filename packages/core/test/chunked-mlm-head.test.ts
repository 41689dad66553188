import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHUNKED_PREFIX_CE, IGNORE_INDEX, registerWasmTrainingKernels } from '@mrl/kernels';
import { chunkedPrefixSoftmaxCrossEntropy } from '../src/ops/chunked-mlm-head.js';
import { prefixSoftmaxCrossEntropy } from '../src/ops/prefix-softmax-ce.js';
import { expectClose, randomArray } from './helpers/close.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';

interface Case {
  name: string;
  rows: number;
  width: number;
  classes: number;
  dims: number[];
  bias: boolean;
  chunk: number;
  /** Rows whose label is IGNORE_INDEX. */
  ignored: number[];
}

const CASES: Case[] = [
  {
    name: 'dims up to d, chunk not dividing C',
    rows: 9,
    width: 16,
    classes: 37,
    dims: [2, 4, 8, 16],
    bias: true,
    chunk: 8,
    ignored: [],
  },
  {
    name: 'dims short of d, no bias',
    rows: 7,
    width: 12,
    classes: 50,
    dims: [3, 8],
    bias: false,
    chunk: 16,
    ignored: [],
  },
  {
    name: 'ignored rows, odd widths',
    rows: 11,
    width: 10,
    classes: 23,
    dims: [1, 5, 9],
    bias: true,
    chunk: 5,
    ignored: [0, 4, 10],
  },
  {
    name: 'one dim equal to d (a plain head)',
    rows: 6,
    width: 8,
    classes: 19,
    dims: [8],
    bias: true,
    chunk: 4,
    ignored: [2],
  },
  {
    name: 'one chunk wider than C',
    rows: 5,
    width: 32,
    classes: 300,
    dims: [4, 8, 16, 32],
    bias: true,
    chunk: 2048,
    ignored: [],
  },
  {
    name: 'many chunks, MLM-like shape',
    rows: 40,
    width: 64,
    classes: 1001,
    dims: [8, 16, 32, 64],
    bias: true,
    chunk: 128,
    ignored: [3],
  },
];

interface Result {
  losses: Float32Array;
  dz: Float32Array;
  dw: Float32Array;
  db: Float32Array | null;
}

function labelsOf(c: Case): Int32Array {
  return Int32Array.from({ length: c.rows }, (_, i) =>
    c.ignored.includes(i) ? IGNORE_INDEX : (i * 7 + 3) % c.classes,
  );
}

/**
 * Losses (weighted by index + 1, so each dim's gradient differs) and gradients, of `form` on
 * the rows in `rows` (all by default).
 */
function lossAndGrads(c: Case, form: 'chunked' | 'stacked', rows?: number[]): Result {
  return tf.tidy(() => {
    const keep = rows ?? Array.from({ length: c.rows }, (_, i) => i);
    const zAll = randomArray(c.rows * c.width, 1).map((v) => v * 2);
    const zData = new Float32Array(keep.length * c.width);
    keep.forEach((r, i) => zData.set(zAll.subarray(r * c.width, (r + 1) * c.width), i * c.width));
    const z = tf.tensor2d(zData, [keep.length, c.width]);
    const w = tf.tensor2d(randomArray(c.classes * c.width, 2), [c.classes, c.width]);
    const b = tf.tensor1d(randomArray(c.classes, 3));
    const all = labelsOf(c);
    const labels = tf.tensor1d(
      Int32Array.from(keep, (r) => all[r]!),
      'int32',
    );
    const weights = tf.tensor1d(c.dims.map((_, j) => j + 1));
    const loss = (zz: tf.Tensor2D, ww: tf.Tensor2D, bb: tf.Tensor1D | null) =>
      form === 'chunked'
        ? chunkedPrefixSoftmaxCrossEntropy(zz, ww, bb, labels, c.dims, { chunk: c.chunk })
        : prefixSoftmaxCrossEntropy(zz, ww, bb, labels, c.dims, 'classes-first');
    const f = (...xs: tf.Tensor[]) =>
      tf.sum(tf.mul(loss(xs[0] as tf.Tensor2D, xs[1] as tf.Tensor2D, c.bias ? (xs[2] as tf.Tensor1D) : null), weights));
    const losses = loss(z, w, c.bias ? b : null);
    const { grads } = tf.valueAndGrads(f)(c.bias ? [z, w, b] : [z, w]);
    return {
      losses: losses.dataSync() as Float32Array,
      dz: grads[0]!.dataSync() as Float32Array,
      dw: grads[1]!.dataSync() as Float32Array,
      db: c.bias ? (grads[2]!.dataSync() as Float32Array) : null,
    };
  });
}

const native = NATIVE_OPTIONS.find(([name]) => name === 'onnxruntime')![1];

describe('chunkedPrefixSoftmaxCrossEntropy on native kernels equals the stacked kernel', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels(native);
    expect(tf.getKernel(CHUNKED_PREFIX_CE, 'wasm')).toBeDefined();
  });

  for (const c of CASES) {
    it(`${c.name}: losses and gradients to 1e-5`, () => {
      const kept = Array.from({ length: c.rows }, (_, i) => i).filter((i) => !c.ignored.includes(i));
      const before = tf.memory().numTensors;
      const chunked = lossAndGrads(c, 'chunked');
      expect(tf.memory().numTensors).toBe(before);
      // The stacked kernel knows no ignore index: it sees the kept rows only.
      const stacked = lossAndGrads(c, 'stacked', kept);
      expect(chunked.losses.length).toBe(c.dims.length);
      expectClose(chunked.losses, stacked.losses, 1e-5);
      const dzKept = new Float32Array(kept.length * c.width);
      kept.forEach((r, i) => dzKept.set(chunked.dz.subarray(r * c.width, (r + 1) * c.width), i * c.width));
      expectClose(dzKept, stacked.dz, 1e-5);
      expectClose(chunked.dw, stacked.dw, 1e-5);
      if (c.bias) expectClose(chunked.db!, stacked.db!, 1e-5);
      // Ignored rows and columns past the largest dim get no gradient.
      const last = c.dims[c.dims.length - 1]!;
      chunked.dz.forEach((v, i) => {
        if (c.ignored.includes(Math.floor(i / c.width)) || i % c.width >= last) expect(v).toBe(0);
      });
      if (last < c.width) chunked.dw.forEach((v, i) => i % c.width >= last && expect(v).toBe(0));
      expect(Math.max(...Array.from(chunked.dw, Math.abs))).toBeGreaterThan(0);
    });
  }

  it('equals the tensor-op form on the cpu backend (which also honours the ignore index)', async () => {
    const c = CASES[2]!;
    const wasm = lossAndGrads(c, 'chunked');
    await tf.setBackend('cpu');
    try {
      const cpu = lossAndGrads(c, 'chunked');
      expectClose(wasm.losses, cpu.losses, 1e-5);
      expectClose(wasm.dz, cpu.dz, 1e-5);
      expectClose(wasm.dw, cpu.dw, 1e-5);
      expectClose(wasm.db!, cpu.db!, 1e-5);
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('matches a numerical gradient on a tiny case', () => {
    const [rows, width, classes, dims, chunk] = [3, 5, 7, [2, 3, 5], 3] as const;
    const z0 = randomArray(rows * width, 11);
    const w0 = randomArray(classes * width, 12);
    const b0 = randomArray(classes, 13);
    const labels = Int32Array.of(4, IGNORE_INDEX, 6);
    const weights = [0.5, 1, 2];
    const total = (z: Float32Array, w: Float32Array, b: Float32Array): number =>
      tf.tidy(() => {
        const losses = chunkedPrefixSoftmaxCrossEntropy(
          tf.tensor2d(z, [rows, width]),
          tf.tensor2d(w, [classes, width]),
          tf.tensor1d(b),
          tf.tensor1d(labels, 'int32'),
          dims,
          { chunk },
        ).dataSync();
        return weights.reduce((s, wt, j) => s + wt * losses[j]!, 0);
      });
    const grads = tf.tidy(() => {
      const f = (z: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
        tf.sum(
          tf.mul(
            chunkedPrefixSoftmaxCrossEntropy(
              z as tf.Tensor2D,
              w as tf.Tensor2D,
              b as tf.Tensor1D,
              tf.tensor1d(labels, 'int32'),
              dims,
              { chunk },
            ),
            tf.tensor1d(weights),
          ),
        ) as tf.Scalar;
      const { grads: g } = tf.valueAndGrads(f as (...xs: tf.Tensor[]) => tf.Scalar)([
        tf.tensor2d(z0, [rows, width]),
        tf.tensor2d(w0, [classes, width]),
        tf.tensor1d(b0),
      ]);
      return g.map((t) => t.dataSync() as Float32Array);
    });
    const eps = 1e-2;
    const arrays = [z0, w0, b0];
    arrays.forEach((x, a) => {
      for (let i = 0; i < x.length; i++) {
        const at = (delta: number) => {
          const copy = arrays.map((y) => y.slice());
          copy[a]![i] = x[i]! + delta;
          return total(copy[0]!, copy[1]!, copy[2]!);
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(grads[a]![i]! - numeric), `input ${a} entry ${i}`).toBeLessThan(2e-3);
      }
    });
  });

  it('names a label outside the classes', () => {
    expect(() =>
      tf.tidy(() =>
        chunkedPrefixSoftmaxCrossEntropy(tf.ones([2, 4]), tf.ones([3, 4]), null, tf.tensor1d([0, 3], 'int32'), [2, 4]),
      ),
    ).toThrow(/label 3 of row 1 is outside \[0, 3\) and is not the ignore index -100/);
  });
});

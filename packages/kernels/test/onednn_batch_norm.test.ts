// Training-mode batch norm on the oneDNN addon's threads (src/native/onednn_batch_norm.ts and
// native/batch_norm.cc), with and without the fused ReLU: against a float64 reference, central
// differences of it for the gradient, the wasm SIMD kernels it replaces (through the TF.js
// kernels, the batch statistics that feed the running averages included), the same bits at 1 and
// 2 threads, and the fallback to the wasm kernels where the addon is absent (a fresh module
// instance under MRL_ONEDNN=off), which runs here always. Also the residual relu(a + b) and
// ReLU's gradient (src/wasm/add_relu.ts) on the addon and on wasm, against TF.js's Add, Relu and
// its gradient.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import {
  loadOneDnnBatchNorm,
  type NativeBatchNorm,
  oneDnnBatchNormAvailable,
} from '../src/native/onednn_batch_norm.js';
import { loadOnnxRuntimeKernels, type NativeKernels } from '../src/native/onnxruntime.js';
import { ADD_RELU, RELU_GRAD } from '../src/wasm/add_relu.js';
import { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD } from '../src/wasm/batch_norm.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectNeedsOneDnn, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

const present = oneDnnBatchNormAvailable();
const EPS = 1e-5;

/** Bit equality of two float arrays. */
interface Case {
  name: string;
  rows: number;
  c: number;
}

// Rows and channels as [N, H, W, C] flattens them: batch 1, odd channel counts, a row count
// that leaves a partial chunk (16384 values a chunk), and ResNet-18's widest layer at batch 4.
const CASES: Case[] = [
  { name: 'batch 1, 4x4, 8 channels', rows: 16, c: 8 },
  { name: 'batch 1, 3x3, 3 channels', rows: 9, c: 3 },
  { name: '[2, 5, 5, 7]', rows: 50, c: 7 },
  { name: '[3, 4, 5, 13]', rows: 60, c: 13 },
  { name: '[2, 17, 31, 64] (a partial last chunk, 2 threads)', rows: 2 * 17 * 31, c: 64 },
  { name: '[4, 32, 32, 64] (ResNet stage 1)', rows: 4 * 32 * 32, c: 64 },
  { name: '[4, 4, 4, 512] (ResNet stage 4)', rows: 4 * 4 * 4, c: 512 },
];

/** x with a per-channel offset and scale (statistics far from 0 and 1), gamma, beta, dy. */
function inputs(rows: number, c: number, seed: number) {
  const x = randomArray(rows * c, seed).map((v, i) => 3 * v * (1 + (i % c) / c) + ((i % c) % 5) - 2);
  const gamma = randomArray(c, seed + 1).map((v) => 1 + 0.5 * v);
  const beta = randomArray(c, seed + 2);
  const dy = randomArray(rows * c, seed + 3);
  return { x, gamma, beta, dy };
}

/** The forward in float64: y (relu'd with `relu`), mean, biased variance, rstd. */
function referenceForward(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  c: number,
  relu: boolean,
) {
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let r = 0; r < rows; r++) for (let i = 0; i < c; i++) mean[i]! += x[r * c + i]! / rows;
  for (let r = 0; r < rows; r++) for (let i = 0; i < c; i++) variance[i]! += (x[r * c + i]! - mean[i]!) ** 2 / rows;
  const rstd = variance.map((v) => 1 / Math.sqrt(v + EPS));
  const y = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < c; i++) {
      const v = (x[r * c + i]! - mean[i]!) * rstd[i]! * gamma[i]! + beta[i]!;
      y[r * c + i] = relu ? Math.max(v, 0) : v;
    }
  }
  return { y, mean, variance, rstd };
}

/**
 * dx, dgamma, dbeta in float64 from the closed form, for the loss sum(dy * f(x)), f the forward
 * (with `relu`: dy masked where the output is not positive); checked by central differences below.
 */
function closedFormGradient(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  c: number,
  relu: boolean,
) {
  const { y, mean, rstd } = referenceForward(x, gamma, beta, rows, c, relu);
  const g = Float64Array.from(dy, (v, k) => (relu && !(y[k]! > 0) ? 0 : v));
  const dbeta = new Float64Array(c);
  const dgamma = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < c; i++) {
      const k = r * c + i;
      dbeta[i]! += g[k]!;
      dgamma[i]! += g[k]! * (x[k]! - mean[i]!) * rstd[i]!;
    }
  }
  const dx = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < c; i++) {
      const k = r * c + i;
      const xhat = (x[k]! - mean[i]!) * rstd[i]!;
      dx[k] = gamma[i]! * rstd[i]! * (g[k]! - dbeta[i]! / rows - (xhat * dgamma[i]!) / rows);
    }
  }
  return { dx, dgamma, dbeta };
}

/** Runs the addon's forward and backward on fresh output arrays. */
function runNative(bn: NativeBatchNorm, rows: number, c: number, relu: boolean, seed: number) {
  const { x, gamma, beta, dy } = inputs(rows, c, seed);
  const y = new Float32Array(rows * c).fill(Number.NaN);
  const [mean, variance, rstd] = [0, 1, 2].map(() => new Float32Array(c).fill(Number.NaN)) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  bn.forward(rows, c, EPS, relu, x, gamma, beta, y, mean, variance, rstd);
  const dx = new Float32Array(rows * c).fill(Number.NaN);
  const dgamma = new Float32Array(c).fill(Number.NaN);
  const dbeta = new Float32Array(c).fill(Number.NaN);
  bn.backward(rows, c, relu, dy, x, relu ? y : undefined, gamma, mean, rstd, dx, dgamma, dbeta);
  return { x, gamma, beta, dy, y, mean, variance, rstd, dx, dgamma, dbeta };
}

/** Skips (passing) where the addon cannot be built; fails where it can but is not. */
function addonOrSkip(): boolean {
  if (!present) expect(ONEDNN_BUILDABLE, 'libdnnl-dev is installed: run the native build').toBe(false);
  return present;
}

describe('batch norm on the addon: used where it is built, the wasm kernels where it is not', () => {
  it('loads wherever setup can build the addon, and is then the default', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    const auto = nativeKernels();
    expect(auto.batchNorm !== undefined).toBe(present);
    expect(auto.detail.includes('batch norm on the oneDNN addon')).toBe(present);
    const wasm = nativeKernels({ batchNorm: 'wasm' });
    expect(wasm.batchNorm).toBeUndefined();
    expect(wasm.detail).not.toMatch(/batch norm/);
  });

  it('without the addon: no native batch norm, and asking for it names the fix', async () => {
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.batchNorm).toBeUndefined();
      expect(fallback.detail).not.toMatch(/batch norm/);
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ batchNorm: 'onednn' }),
        "batch norm 'onednn' needs the oneDNN addon with its batch-norm kernels (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      );
    });
  });

  it('an addon built before these kernels: the wasm kernels run, and asking for the addon names the fix', async () => {
    try {
      vi.resetModules();
      vi.doMock('../src/native/onednn.js', () => ({ loadAddon: () => ({ version: () => '2.6.3' }) }));
      const fresh = await import('../src/native/onednn_batch_norm.js');
      expect(fresh.oneDnnBatchNormAvailable()).toBe(false);
      expect(fresh.loadOneDnnBatchNorm({ threads: 1 })).toBeUndefined();
      expect(() => fresh.loadOneDnnBatchNorm({ threads: 1, required: true })).toThrow(/predates them/);
    } finally {
      vi.doUnmock('../src/native/onednn.js');
      vi.resetModules();
    }
  });

  it('refuses an unknown batch-norm source, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ batchNorm: 'mkl' as 'onednn' })).toThrow(
      'batchNorm must be one of onednn, wasm, got "mkl".',
    );
  });
});

describe('the addon against float64', () => {
  for (const { name, rows, c } of CASES) {
    for (const relu of [false, true]) {
      it(`${name}${relu ? ', ReLU fused' : ''}: outputs, statistics and gradients to 1e-5`, () => {
        if (!addonOrSkip()) return;
        const bn = loadOneDnnBatchNorm({ threads: 2 })!;
        const got = runNative(bn, rows, c, relu, 7 + c);
        const want = referenceForward(got.x, got.gamma, got.beta, rows, c, relu);
        expectClose(got.y, want.y, 1e-5);
        expectClose(got.mean, want.mean, 1e-5);
        expectClose(got.variance, want.variance, 1e-5);
        expectClose(got.rstd, want.rstd, 1e-5);
        const grad = closedFormGradient(got.dy, got.x, got.gamma, got.beta, rows, c, relu);
        expectClose(got.dx, grad.dx, 1e-5);
        expectClose(got.dgamma, grad.dgamma, 1e-5);
        expectClose(got.dbeta, grad.dbeta, 1e-5);
        if (relu) {
          expect(got.y.some((v) => v === 0)).toBe(true); // the mask does something
          expect(got.y.every((v) => v >= 0)).toBe(true);
        }
      });
    }
  }

  it('the closed form equals central differences of the float64 forward (x, gamma, beta; with and without ReLU)', () => {
    const [rows, c] = [6, 3];
    for (const relu of [false, true]) {
      const { x, gamma, beta, dy } = inputs(rows, c, 40);
      const xs = Array.from(x);
      const gs = Array.from(gamma);
      const bs = Array.from(beta);
      const loss = (xv: number[], gv: number[], bv: number[]): number =>
        referenceForward(xv, gv, bv, rows, c, relu).y.reduce((s, v, k) => s + v * dy[k]!, 0);
      const h = 1e-6;
      const diff = (values: number[], at: (v: number[]) => number): number[] =>
        values.map((_, k) => {
          const up = [...values];
          const down = [...values];
          up[k]! += h;
          down[k]! -= h;
          return (at(up) - at(down)) / (2 * h);
        });
      const grad = closedFormGradient(dy, x, gamma, beta, rows, c, relu);
      expectClose(
        grad.dx,
        diff(xs, (v) => loss(v, gs, bs)),
        1e-5,
      );
      expectClose(
        grad.dgamma,
        diff(gs, (v) => loss(xs, v, bs)),
        1e-5,
      );
      expectClose(
        grad.dbeta,
        diff(bs, (v) => loss(xs, gs, v)),
        1e-5,
      );
    }
  });

  it('gives the same bits at 1 and 2 threads, run to run (chunks fixed by the shape, added in order)', () => {
    if (!addonOrSkip()) return;
    const one = loadOneDnnBatchNorm({ threads: 1 })!;
    const two = loadOneDnnBatchNorm({ threads: 2 })!;
    const [rows, c] = [2 * 17 * 31, 64];
    for (const relu of [false, true]) {
      const first = runNative(two, rows, c, relu, 3);
      for (const run of [runNative(two, rows, c, relu, 3), runNative(one, rows, c, relu, 3)]) {
        for (const k of ['y', 'mean', 'variance', 'rstd', 'dx', 'dgamma', 'dbeta'] as const) {
          expect(sameBits(run[k], first[k]), k).toBe(true);
        }
      }
    }
  });

  it('refuses arrays whose lengths do not match, naming the array', () => {
    if (!addonOrSkip()) return;
    const raw = loadAddon() as unknown as { batchNorm(...args: unknown[]): void };
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => raw.batchNorm(Int32Array.of(1, 4, 3, 0), EPS, f(12), f(3), f(3), f(11), f(3), f(3), f(3))).toThrow(
      'onednn: batch-norm y has 11 values, expected 12',
    );
    expect(() => raw.batchNorm(Int32Array.of(1, 4, 0, 0), EPS, f(0), f(0), f(0), f(0), f(0), f(0), f(0))).toThrow(
      'onednn: batch-norm threads, rows and channels must be positive, relu 0 or 1',
    );
  });
});

describe('the TF.js kernels on the addon equal the wasm SIMD kernels to 1e-5', () => {
  const withAddon = nativeKernels({ threads: 2 });
  const wasmOnly = nativeKernels({ threads: 2, batchNorm: 'wasm' });

  beforeAll(async () => {
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    registerWasmTrainingKernels({ native: nativeKernels() });
    await tf.setBackend('cpu');
  });

  /** Forward outputs and gradient outputs of the registered kernels, on `native`. */
  function kernels(native: NativeKernels, shape: number[], relu: boolean): Float32Array[] {
    registerWasmTrainingKernels({ native });
    const c = shape[3]!;
    const rows = shape[0]! * shape[1]! * shape[2]!;
    const { x, gamma, beta, dy } = inputs(rows, c, 11);
    return tf.tidy(() => {
      const xt = tf.tensor4d(x, shape as [number, number, number, number]);
      const g = tf.tensor1d(gamma);
      const attrs = relu ? { epsilon: EPS, relu } : { epsilon: EPS };
      const [y, mean, variance, rstd] = tf
        .engine()
        .runKernel(BATCH_NORM_TRAINING, { x: xt, gamma: g, beta: tf.tensor1d(beta) }, attrs) as tf.Tensor[];
      const grads = tf.engine().runKernel(
        BATCH_NORM_TRAINING_GRAD,
        {
          dy: tf.tensor4d(dy, shape as [number, number, number, number]),
          x: xt,
          gamma: g,
          mean: mean!,
          rstd: rstd!,
          ...(relu ? { y: y! } : {}),
        },
        relu ? { relu } : {},
      ) as tf.Tensor[];
      return [y!, mean!, variance!, rstd!, ...grads].map((t) => t.dataSync() as Float32Array);
    });
  }

  for (const shape of [
    [1, 4, 4, 8],
    [1, 3, 3, 12],
    [2, 17, 31, 64],
    [4, 4, 4, 512],
  ]) {
    for (const relu of [false, true]) {
      it(`[${shape.join(', ')}]${relu ? ', ReLU fused' : ''}: y, mean, variance (the running averages' inputs), rstd, dx, dgamma, dbeta`, () => {
        if (!addonOrSkip()) return;
        const got = kernels(withAddon, shape, relu);
        const want = kernels(wasmOnly, shape, relu);
        expect(got.length).toBe(7);
        got.forEach((values, i) => expectClose(values, want[i]!, 1e-5));
      });
    }
  }

  it('with relu, the gradient kernel refuses a missing y, naming the fix (addon and wasm alike)', () => {
    for (const native of [withAddon, wasmOnly]) {
      registerWasmTrainingKernels({ native });
      tf.tidy(() => {
        const x = tf.ones([1, 2, 2, 4]);
        const c = tf.ones([4]);
        expect(() =>
          tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD, { dy: x, x, gamma: c, mean: c, rstd: c }, { relu: true }),
        ).toThrow(
          "MrlBatchNormTrainingGrad: with relu, input 'y' (the forward's output) must be float32 like x [1, 2, 2, 4], got none.",
        );
      });
    }
  });

  // relu(a + b) and ReLU's gradient: the addon, wasm's SIMD loops and TF.js's own kernels (Add,
  // Relu, and Relu's registered gradient dy * step(x)) give the same bits.
  for (const shape of [
    [1, 2, 2, 4],
    [3, 5, 7, 12],
    [16, 16, 16, 128],
  ]) {
    it(`relu(a + b) and its gradient, [${shape.join(', ')}]: addon, wasm and TF.js's Add, Relu and gradient agree to the bit`, () => {
      const n = shape.reduce((p, d) => p * d, 1);
      const [a, b, dy] = [21, 22, 23].map((s) => randomArray(n, s)) as [Float32Array, Float32Array, Float32Array];
      const ours = (native: NativeKernels): Float32Array[] => {
        registerWasmTrainingKernels({ native });
        return tf.tidy(() => {
          const y = tf.engine().runKernel(ADD_RELU, { a: tf.tensor(a, shape), b: tf.tensor(b, shape) }) as tf.Tensor;
          const dx = tf.engine().runKernel(RELU_GRAD, { dy: tf.tensor(dy, shape), y }) as tf.Tensor;
          return [y.dataSync() as Float32Array, dx.dataSync() as Float32Array];
        });
      };
      const shipped = tf.tidy(() => {
        const f = (x: tf.Tensor): tf.Tensor => tf.relu(tf.add(x, tf.tensor(b, shape)));
        const { value, grad } = tf.valueAndGrad(f)(tf.tensor(a, shape), tf.tensor(dy, shape));
        return [value.dataSync() as Float32Array, grad.dataSync() as Float32Array];
      });
      expect(shipped[0]!.some((v) => v === 0) && shipped[0]!.some((v) => v > 0)).toBe(true);
      for (const got of [ours(wasmOnly), ...(present ? [ours(withAddon)] : [])]) {
        expect(sameBits(got[0]!, shipped[0]!), 'y').toBe(true);
        // -0 (dy * 0 for dy < 0, TF.js) and +0 (the mask) are the same gradient; compare values.
        expect(Array.from(got[1]!)).toEqual(Array.from(shipped[1]!, (v) => v + 0));
      }
    });
  }

  it('relu(a + b) refuses inputs of two shapes or a last axis that is not a multiple of 4, naming them', () => {
    registerWasmTrainingKernels({ native: wasmOnly });
    tf.tidy(() => {
      expect(() => tf.engine().runKernel(ADD_RELU, { a: tf.ones([2, 4]), b: tf.ones([4, 2]) })).toThrow(
        "MrlAddRelu: 'b' is float32 [4, 2]; every input must be float32 of one shape whose last axis is a positive multiple of 4 (a: [2, 4]).",
      );
      expect(() => tf.engine().runKernel(RELU_GRAD, { dy: tf.ones([2, 3]), y: tf.ones([2, 3]) })).toThrow(
        "MrlReluGrad: 'dy' is float32 [2, 3]; every input must be float32 of one shape whose last axis is a positive multiple of 4 (dy: [2, 3]).",
      );
    });
  });
});

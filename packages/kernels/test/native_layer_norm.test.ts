// Layer norm and its gradient on the oneDNN addon's threads (src/wasm/native_layer_norm.ts):
// against the wasm SIMD kernels (transformer_ops.ts, registered without native kernels) to the bit
// at 1, 2 and 3 threads, on ViT-tiny's and BERT-mini's shapes and on widths that are not a
// multiple of 16 (row counts not a multiple of 8), with rows of one constant value, rows far from 0
// and rows of tiny spread; both against a float64 computation; that the addon really runs the
// large tensors; and every fallback (small tensors, other widths and dtypes,
// mismatched inputs, no addon).
import * as tf from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LAYER_NORM, LAYER_NORM_GRAD, registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';
import { bitDifference } from './helpers/bits.js';

/** `native` with its addon kernels under test counted (see countedNative). */
const countedLayerNorm = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['layerNorm', 'layerNormGrad']);

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

/** Offset of row r: every 11th row near 1e4, every 13th near -300; 0 otherwise. */
const offset = (r: number): number => (r % 11 === 4 ? 1e4 : r % 13 === 6 ? -300 : 0);

/**
 * rows x cols values in [-1, 1] plus each row's offset; every 7th row one constant value (0.75,
 * whose sums are exact, or 3.1, whose are not), every 9th row a spread of 1e-3 (variance near eps),
 * every 15th row subnormal values (unless another rule took it).
 */
function inputs(rows: number, cols: number, seed: number): Float32Array {
  const x = randomArray(rows * cols, seed);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    if (r % 7 === 2) row.fill(r % 2 === 0 ? 0.75 : 3.1);
    else if (r % 9 === 5) for (let j = 0; j < cols; j++) row[j] = row[j]! * 1e-3;
    else if (r % 15 === 8) for (let j = 0; j < cols; j++) row[j] = row[j]! * 1e-39; // subnormal
    for (let j = 0; j < cols; j++) row[j] = row[j]! + offset(r);
  }
  return x;
}

/** Equal bit for bit: 'same', or the first value that differs. */
const sameBits = (got: Float32Array, want: Float32Array): string => bitDifference(got, want, 'wasm kernel', false);

interface Case {
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  dy: Float32Array;
  shape: number[];
  epsilon: number;
}

/** [y, mean, rstd, dx, dgamma, dbeta] of the registered kernels. */
function run(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const cols = c.shape[c.shape.length - 1]!;
    const x = tf.tensor(c.x, c.shape);
    const gamma = tf.tensor(c.gamma, [cols]);
    const forward = tf
      .engine()
      .runKernel(LAYER_NORM, { x, gamma, beta: tf.tensor(c.beta, [cols]) }, { epsilon: c.epsilon }) as Tensor[];
    const [, mean, rstd] = forward;
    const grads = tf.engine().runKernel(LAYER_NORM_GRAD, {
      x,
      mean: mean!,
      rstd: rstd!,
      gamma,
      dy: tf.tensor(c.dy, c.shape),
    }) as Tensor[];
    return [...forward, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

/** The wasm kernels' results (registered without native kernels). */
function wasm(c: Case): Float32Array[] {
  registerWasmTrainingKernels();
  return run(c);
}

function makeCase(shape: number[], seed: number, epsilon = 1e-5): Case {
  const cols = shape[shape.length - 1]!;
  const n = shape.reduce((p, d) => p * d, 1);
  return {
    x: inputs(n / cols, cols, seed),
    gamma: randomArray(cols, seed + 1).map((v) => 1 + v / 2),
    beta: randomArray(cols, seed + 2),
    dy: randomArray(n, seed + 3),
    shape,
    epsilon,
  };
}

const U = 2 ** -24;

/**
 * The largest |got - want| / bound over each output against a float64 computation from the same
 * float32 inputs (1 or less: within the bound). The bounds are first-order worst cases of float32
 * rounding in the wasm kernel's order: the mean against the exact mean (a lane of cols / 4 values,
 * then the lanes' sum), rstd against the exact value for a variance taken around the kernel's own
 * mean; y, dx, dgamma and dbeta against float64 values from the kernel's own mean and rstd (so a
 * row whose float32 mean cancels badly, as a constant row with eps 1e-12, is judged by its mean).
 */
function float64Error(c: Case, got: Float32Array[]): Record<string, number> {
  const cols = c.shape[c.shape.length - 1]!;
  const rows = c.x.length / cols;
  const lane = cols / 4;
  const worst = { y: 0, mean: 0, rstd: 0, dx: 0, dgamma: 0, dbeta: 0 };
  const dgamma = new Float64Array(cols);
  const dgammaAbs = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  const dbetaAbs = new Float64Array(cols);
  const note = (k: keyof typeof worst, g: number, w: number, bound: number): void => {
    worst[k] = Math.max(worst[k], Math.abs(g - w) / (bound + 1e-30));
  };
  const eps = Math.fround(c.epsilon);
  for (let r = 0; r < rows; r++) {
    const x = c.x.subarray(r * cols, (r + 1) * cols);
    const dy = c.dy.subarray(r * cols, (r + 1) * cols);
    let m = 0;
    let a = 0;
    for (const v of x) {
      m += v;
      a = Math.max(a, Math.abs(v));
    }
    m /= cols;
    const gm = got[1]![r]!;
    const gs = got[2]![r]!;
    note('mean', gm, m, (lane + 3) * U * a);
    // Variance around the kernel's mean: the exact one plus (its error)^2; rstd between the
    // values for that variance with the sums' relative error either way.
    let v2 = 0;
    for (const v of x) v2 += (v - gm) ** 2;
    v2 /= cols;
    const k = (lane + 8) * U;
    const hi = (1 / Math.sqrt(Math.max(0, v2 * (1 - k)) + eps)) * (1 + 4 * U);
    const lo = (1 / Math.sqrt(v2 * (1 + k) + eps)) * (1 - 4 * U);
    note('rstd', gs, (hi + lo) / 2, (hi - lo) / 2);
    let sg = 0;
    let sgAbs = 0;
    let sgx = 0;
    let sgxAbs = 0;
    for (let j = 0; j < cols; j++) {
      const xh = (x[j]! - gm) * gs;
      const g = dy[j]! * c.gamma[j]!;
      sg += g;
      sgAbs += Math.abs(g);
      sgx += g * xh;
      sgxAbs += Math.abs(g * xh);
      dgamma[j] = dgamma[j]! + dy[j]! * xh;
      dgammaAbs[j] = dgammaAbs[j]! + Math.abs(dy[j]! * xh);
      dbeta[j] = dbeta[j]! + dy[j]!;
      dbetaAbs[j] = dbetaAbs[j]! + Math.abs(dy[j]!);
      const y = xh * c.gamma[j]! + c.beta[j]!;
      note('y', got[0]![r * cols + j]!, y, 4 * U * (Math.abs(xh * c.gamma[j]!) + Math.abs(y)));
    }
    const mg = sg / cols;
    const mgx = sgx / cols;
    for (let j = 0; j < cols; j++) {
      const xh = (x[j]! - gm) * gs;
      const g = dy[j]! * c.gamma[j]!;
      const bound =
        gs *
        (((lane + 6) * U * (sgAbs + Math.abs(xh) * sgxAbs)) / cols +
          6 * U * (Math.abs(g) + Math.abs(mg) + Math.abs(xh * mgx)));
      note('dx', got[3]![r * cols + j]!, (g - mg - xh * mgx) * gs, bound);
    }
  }
  for (let j = 0; j < cols; j++) {
    note('dgamma', got[4]![j]!, dgamma[j]!, (rows + 4) * U * dgammaAbs[j]!);
    note('dbeta', got[5]![j]!, dbeta[j]!, rows * U * dbetaAbs[j]!);
  }
  return worst;
}

const NAMES = ['y', 'mean', 'rstd', 'dx', 'dgamma', 'dbeta'];

describe('layer norm on the addon', () => {
  it('is registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  for (const [shape, epsilon] of [
    [[16, 65, 192], 1e-5], // ViT-tiny: 1,040 rows of 192
    [[1024, 256], 1e-12], // BERT-mini, its epsilon
    // 67,932 values: column blocks of 112 + 92 at 2 threads, 80 + 80 + 44 at 3; 333 = 8 x 41 + 4 + 1
    // rows (the kernel's groups of 8 interleaved rows, then one of 4, then one row)
    [[333, 204], 1e-5],
    [[3, 37, 1004], 1e-5], // 111 = 8 x 13 + 4 + 3 rows; blocks of at most 256 columns
    [[6554, 12], 1e-3], // 78,648 values in rows of 12 (one block of 12 columns), 8 x 819 + 2 rows
    [[8, 1000], 1e-5], // below the threshold: the wasm kernels everywhere
  ] as const) {
    const n = shape.reduce((p, d) => p * d, 1);
    const large = n >= SIZE_THRESHOLD;
    for (const threads of [1, 2, 3]) {
      const where = large ? 'the addon' : 'the wasm kernels';
      it(`[${shape.join(', ')}] at ${threads} thread(s): all six outputs as the wasm kernels, on ${where}`, () => {
        if (!present) return;
        const c = makeCase([...shape], 31 + n, epsilon);
        const want = wasm(c);
        const { native, calls } = countedLayerNorm(
          nativeKernels({ threads }),
          `layer norm test ${threads}, ${shape.join('x')}`,
        );
        registerWasmTrainingKernels({ native });
        const got = run(c);
        expect(calls()).toBe(large ? 2 : 0);
        for (let k = 0; k < NAMES.length; k++) expect(sameBits(got[k]!, want[k]!), NAMES[k]).toBe('same');
        if (threads === 3) {
          const errors = float64Error(c, got);
          for (const name of NAMES) expect(errors[name as keyof typeof errors], name).toBeLessThanOrEqual(1);
        }
      });
    }
  }

  it('a constant row with exact sums normalises to beta exactly, with rstd = 1 / sqrt(eps)', () => {
    if (!present) return;
    const c = makeCase([1024, 256], 7);
    registerWasmTrainingKernels({ native: nativeKernels({ threads: 2 }) });
    const [y, mean, rstd] = run(c);
    // Row 2 is 0.75 throughout (inputs()).
    expect(mean![2]).toBe(0.75);
    expect(rstd![2]).toBe(Math.fround(1 / Math.fround(Math.sqrt(Math.fround(1e-5)))));
    expect(sameBits(y!.subarray(2 * 256, 3 * 256), c.beta)).toBe('same');
  });

  it('other widths, int32 inputs and mismatched inputs keep the wasm kernels (and their errors)', () => {
    if (!present) return;
    const { native, calls } = countedLayerNorm(nativeKernels({ threads: 2 }), 'fallback test');
    registerWasmTrainingKernels({ native });
    const rows = SIZE_THRESHOLD / 2;
    tf.tidy(() => {
      const g = tf.ones([6]);
      expect(() =>
        tf.engine().runKernel(LAYER_NORM, { x: tf.zeros([rows, 6]), gamma: g, beta: g }, { epsilon: 1e-5 }),
      ).toThrow('MrlLayerNorm: the last axis of x [32768, 6] must be a positive multiple of 4.');
      const g4 = tf.ones([4]);
      expect(() =>
        tf.engine().runKernel(LAYER_NORM, { x: tf.zeros([rows, 4], 'int32'), gamma: g4, beta: g4 }, { epsilon: 1e-5 }),
      ).toThrow("MrlLayerNorm: input 'x' is int32, expected float32.");
      expect(() =>
        tf.engine().runKernel(LAYER_NORM, { x: tf.zeros([rows, 4]), gamma: g4, beta: tf.ones([8]) }, { epsilon: 1e-5 }),
      ).toThrow("MrlLayerNorm: input 'beta' has shape [8], expected 4 values.");
      const x = tf.zeros([rows, 4]);
      const stats = tf.ones([rows]);
      expect(() =>
        tf.engine().runKernel(LAYER_NORM_GRAD, { x, mean: stats, rstd: tf.ones([rows + 1]), gamma: g4, dy: x }),
      ).toThrow(`MrlLayerNormGrad: input 'rstd' has shape [${rows + 1}], expected ${rows} values.`);
      expect(() =>
        tf.engine().runKernel(LAYER_NORM_GRAD, { x, mean: stats, rstd: stats, gamma: g4, dy: tf.zeros([rows, 8]) }),
      ).toThrow(`MrlLayerNormGrad: input 'dy' has shape [${rows}, 8], expected ${rows * 4} values.`);
    });
    expect(calls()).toBe(0);
  });

  it('the addon refuses arrays whose lengths do not match, naming the array, and bad dims', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<'layerNorm' | 'layerNormGrad', (...args: unknown[]) => void>;
    const f = (n: number): Float32Array => new Float32Array(n);
    const dims = Int32Array.of(2, 3, 8);
    expect(() => raw.layerNorm(dims, 1e-5, f(24), f(8), f(8), f(24), f(3), f(2))).toThrow(
      'onednn: layerNorm rstd has 2 values, expected 3',
    );
    expect(() => raw.layerNormGrad(dims, f(24), f(3), f(3), f(8), f(25), f(24), f(8), f(8))).toThrow(
      'onednn: layerNormGrad dy has 25 values, expected 24',
    );
    expect(() => raw.layerNorm(Int32Array.of(2, 3, 6), 1e-5, f(18), f(6), f(6), f(18), f(3), f(3))).toThrow(
      'onednn: layerNorm threads, rows and cols must be positive, cols a multiple of 4',
    );
    expect(() => raw.layerNorm(dims, -1, f(24), f(8), f(8), f(24), f(3), f(3))).toThrow(
      'onednn: layerNorm epsilon must be a non-negative number',
    );
    expect(() => raw.layerNormGrad(dims, f(24))).toThrow(
      'onednn: layerNormGrad takes (dims, x, mean, rstd, gamma, dy, dx, dgamma, dbeta)',
    );
  });

  it('without the addon the wasm kernels run (kernels without batch norm)', () => {
    const c = makeCase([1024, 256], 91);
    const want = wasm(c);
    const native = nativeKernels({ batchNorm: 'wasm', threads: 2 });
    expect(native.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native });
    const got = run(c);
    for (let k = 0; k < NAMES.length; k++) expect(sameBits(got[k]!, want[k]!), NAMES[k]).toBe('same');
  });
});

// GELU and its gradient on the oneDNN addon's threads (src/wasm/native_gelu.ts): against the wasm
// SIMD kernels (transformer_ops.ts, run here at one thread, where they stay) to the bit at 2 and
// 3 threads, over [-8, 8] and the edges (zeros, ±1e-8, the sigmoid's cutoff, large magnitudes,
// infinities, NaN); that the addon really runs the large tensors; and every fallback (one thread,
// small tensors, other dtypes, mismatched inputs, no addon).
import * as tf from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GELU, GELU_GRAD, registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';
import { bitDifference } from './helpers/bits.js';

/** `native` with its addon kernels under test counted (see countedNative). */
const countedGelu = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['gelu', 'geluGrad']);

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

const EDGES = [
  0,
  -0,
  1e-8,
  -1e-8,
  1,
  -1,
  8,
  -8,
  87,
  -87,
  87.3365,
  -87.3365,
  88,
  -88,
  100,
  -100,
  1e4,
  -1e4,
  1e30,
  -1e30,
  3.4e38,
  -3.4e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
];

/** n values: uniform on [-8, 8], a sprinkle of [-100, 100], the edges at the front. */
function values(n: number, seed: number): Float32Array {
  const x = randomArray(n, seed).map((v, i) => (i % 7 === 3 ? v * 100 : v * 8));
  x.set(EDGES.slice(0, Math.min(n, EDGES.length)));
  return x;
}

/** Equal bit for bit, where a NaN equals any NaN (its payload is the CPU's). */
const sameBits = (got: Float32Array, want: Float32Array): string => bitDifference(got, want, 'wasm kernel');

/** [y, s] of MrlGelu and dx of MrlGeluGrad on the registered kernels. */
function run(x: Float32Array, dy: Float32Array, shape: number[]): [Float32Array, Float32Array, Float32Array] {
  return tf.tidy(() => {
    const [y, s] = tf.engine().runKernel(GELU, { x: tf.tensor(x, shape) }, {}) as Tensor[];
    const dx = tf.engine().runKernel(GELU_GRAD, { x: tf.tensor(x, shape), s: s!, dy: tf.tensor(dy, shape) }, {});
    return [y!.dataSync(), s!.dataSync(), (dx as Tensor).dataSync()] as [Float32Array, Float32Array, Float32Array];
  });
}

/** The wasm kernels' results (registered without native kernels). */
function wasm(x: Float32Array, dy: Float32Array, shape: number[]): [Float32Array, Float32Array, Float32Array] {
  registerWasmTrainingKernels();
  return run(x, dy, shape);
}

describe('GELU on the addon', () => {
  it('is registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  for (const shape of [
    [4, 64, 256], // 65,536 values: exactly the threshold, four full blocks
    [3, 7, 11, 13, 31], // 93,093: blocks of 16,384, a partial last one, a tail not a multiple of 4
    [1000], // below the threshold
    [SIZE_THRESHOLD - 1],
  ]) {
    const n = shape.reduce((p, d) => p * d, 1);
    const large = n >= SIZE_THRESHOLD;
    for (const threads of [1, 2, 3]) {
      const where = threads > 1 && large ? 'the addon' : 'the wasm kernels';
      it(`[${shape.join(', ')}] at ${threads} thread(s): y, s and dx as the wasm kernels, on ${where}`, () => {
        if (!present) return;
        const x = values(n, 17 + n);
        const dy = randomArray(n, 19 + n);
        const want = wasm(x, dy, shape);
        const { native, calls } = countedGelu(nativeKernels({ threads }), `gelu test ${threads}, ${shape.join('x')}`);
        registerWasmTrainingKernels({ native });
        const got = run(x, dy, shape);
        expect(calls()).toBe(threads > 1 && large ? 2 : 0);
        expect(sameBits(got[0], want[0]), 'y').toBe('same');
        expect(sameBits(got[1], want[1]), 's').toBe('same');
        expect(sameBits(got[2], want[2]), 'dx').toBe('same');
        // The wasm kernels themselves: GELU is x Φ(x) to ~1e-3 (tanh form), 0 at 0, x for large x.
        expect(got[0][0]).toBe(0);
        expect(got[0][6]).toBeCloseTo(8, 5);
        expect(got[0][7]).toBeCloseTo(0, 5);
      });
    }
  }

  it('int32 inputs and mismatched gradient inputs keep the wasm kernels (and their errors)', () => {
    if (!present) return;
    const { native, calls } = countedGelu(nativeKernels({ threads: 2 }), 'fallback test');
    registerWasmTrainingKernels({ native });
    const n = SIZE_THRESHOLD * 2;
    expect(() => tf.tidy(() => tf.engine().runKernel(GELU, { x: tf.range(0, n, 1, 'int32') }, {}))).toThrow(
      "MrlGelu: input 'x' is int32, expected float32.",
    );
    const x = tf.tensor(values(n, 5));
    expect(() => tf.tidy(() => tf.engine().runKernel(GELU_GRAD, { x, s: x, dy: tf.zeros([n + 4]) }, {}))).toThrow(
      `MrlGeluGrad: input 'dy' has shape [${n + 4}], expected ${n} values.`,
    );
    x.dispose();
    expect(calls()).toBe(0);
  });

  it('the addon refuses arrays whose lengths do not match, naming the array, and bad thread counts', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<'gelu' | 'geluGrad', (...args: unknown[]) => void>;
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => raw.gelu(2, f(8), f(8), f(7))).toThrow('onednn: gelu s has 7 values, expected 8');
    expect(() => raw.geluGrad(2, f(8), f(8), f(9), f(8))).toThrow('onednn: geluGrad dy has 9 values, expected 8');
    expect(() => raw.gelu(0, f(8), f(8), f(8))).toThrow('onednn: gelu takes (threads >= 1, x, y, s)');
    expect(() => raw.geluGrad(1, f(8), f(8), f(8))).toThrow('onednn: geluGrad takes (threads >= 1, x, s, dy, dx)');
  });

  it('without the addon the wasm kernels run (kernels without batch norm)', () => {
    const n = SIZE_THRESHOLD + 3;
    const x = values(n, 61);
    const dy = randomArray(n, 62);
    const want = wasm(x, dy, [n]);
    const native = nativeKernels({ batchNorm: 'wasm', threads: 2 });
    expect(native.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native });
    const got = run(x, dy, [n]);
    for (let k = 0; k < 3; k++) expect(sameBits(got[k]!, want[k]!)).toBe('same');
  });
});

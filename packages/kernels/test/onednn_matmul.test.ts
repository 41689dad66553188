// The products on oneDNN (the optional addon, src/native/onednn_matmul.ts and
// native/onednn_matmul.cc) against ONNX Runtime's MLAS matMul that they replace: every transpose
// combination, batch broadcasting (either side, and ranks that differ), odd sizes, ViT-tiny's and
// BERT-mini's shapes; the same bits run to run on 2 threads; the BatchMatMul kernel on the cpu
// backend; and the fallback to ONNX Runtime where the addon is absent (a fresh module instance
// under MRL_ONEDNN=off), which runs here always.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnMatMulAvailable } from '../src/native/onednn_matmul.js';
import { loadOnnxRuntimeKernels } from '../src/native/onnxruntime.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { expectClose, randomArray } from './helpers/close.js';
import { size } from './helpers/conv.js';
import { expectNeedsOneDnn, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

const ort = nativeKernels({ matmul: 'onnxruntime' });
/** The default kernels: products on oneDNN where the addon loads, else the same as `ort`. */
const auto = nativeKernels();
const present = oneDnnMatMulAvailable();

/** Bit equality of two float arrays (toEqual walks 600,000 entries one by one: seconds). */
/** The output shape of `op(a) @ op(b)` with numpy broadcasting over the batch axes. */
function outShape(aShape: number[], bShape: number[], ta: boolean, tb: boolean): number[] {
  const m = aShape[aShape.length - (ta ? 1 : 2)]!;
  const n = bShape[bShape.length - (tb ? 2 : 1)]!;
  const rank = Math.max(aShape.length, bShape.length);
  const pad = (s: number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s];
  const a = pad(aShape);
  const b = pad(bShape);
  return [...a.slice(0, -2).map((d, i) => Math.max(d, b[i]!)), m, n];
}

function product(kernels: NativeKernels, aShape: number[], bShape: number[], ta: boolean, tb: boolean, seed = 1) {
  const a = randomArray(size(aShape), seed);
  const b = randomArray(size(bShape), seed + 1);
  const yShape = outShape(aShape, bShape, ta, tb);
  const y = new Float32Array(size(yShape)).fill(Number.NaN); // every entry must be written
  kernels.matMul(a, aShape, b, bShape, y, yShape, ta, tb);
  return y;
}

/** [name, aShape (untransposed: [..., M, K]), bShape (untransposed: [..., K, N])] */
const CASES: Array<[string, number[], number[]]> = [
  ['odd sizes 7x13 @ 13x5', [7, 13], [13, 5]],
  ['a row and a column', [1, 9], [9, 1]],
  ['K of 1 (an outer product)', [5, 1], [1, 6]],
  ['batch 3, odd sizes', [3, 17, 11], [3, 11, 19]],
  ['b broadcast over the batch (rank 3 @ rank 2)', [4, 9, 6], [6, 10]],
  ['a broadcast over the batch (rank 2 @ rank 3)', [9, 6], [4, 6, 10]],
  ['both broadcast, rank 4 (a [2,1], b [1,3])', [2, 1, 5, 7], [1, 3, 7, 4]],
  ['batch of 1 on one side, rank 4 @ rank 3', [2, 3, 5, 7], [1, 7, 4]],
  ['ViT-tiny qkv', [1040, 192], [192, 576]],
  ['ViT-tiny attention', [48, 65, 64], [48, 64, 65]],
  ['BERT-mini attention', [8, 4, 128, 64], [8, 4, 64, 128]],
];

/** The stored shape of an operand given untransposed, transposing its last two axes when asked. */
const stored = (shape: number[], t: boolean): number[] =>
  t ? [...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!] : shape;

describe('the oneDNN products: used where the addon is built, ONNX Runtime where it is not', () => {
  it('load wherever setup can build the addon, and then run matMul by default', () => {
    if (ONEDNN_BUILDABLE) {
      expect(present, 'libdnnl-dev is installed: run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    }
    if (present) {
      expect(auto.detail).toMatch(/products on oneDNN \d+\.\d+/);
      expect(loadOnnxRuntimeKernels({ matmul: 'onednn' })?.detail).toMatch(/products on oneDNN/);
    } else {
      expect(auto.detail).not.toMatch(/products on oneDNN/);
    }
    expect(ort.detail).not.toMatch(/products on oneDNN/);
  });

  it('without the addon: ONNX Runtime runs the products, and asking for oneDNN names the fix', async () => {
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.detail).not.toMatch(/oneDNN/);
      expect(fallback.matMul).not.toBe(auto.matMul);
      expect(product(fallback, [3, 11, 17], [3, 19, 11], true, true)).toEqual(
        product(ort, [3, 11, 17], [3, 19, 11], true, true),
      );
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ matmul: 'onednn' }),
        "matmul 'onednn' needs the oneDNN addon with its products (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      );
    });
  });

  it('an addon built before the products: ONNX Runtime runs them, and asking for oneDNN names the fix', async () => {
    try {
      vi.resetModules();
      vi.doMock('../src/native/onednn.js', () => ({ loadAddon: () => ({ version: () => '2.6.3' }) }));
      const fresh = await import('../src/native/onednn_matmul.js');
      expect(fresh.oneDnnMatMulAvailable()).toBe(false);
      expect(fresh.loadOneDnnMatMul({ threads: 1, fallback: ort })).toBeUndefined();
      expect(() => fresh.loadOneDnnMatMul({ threads: 1, fallback: ort, required: true })).toThrow(/predates them/);
    } finally {
      vi.doUnmock('../src/native/onednn.js');
      vi.resetModules();
    }
  });

  it('refuses an unknown matmul source, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ matmul: 'mkl' as 'onednn' })).toThrow(
      'matmul must be one of onednn, onnxruntime, got "mkl".',
    );
  });
});

// Where the addon is absent `auto` is ONNX Runtime, and these compare it with itself (bit-equal).
describe('products on oneDNN equal ONNX Runtime to 1e-5', () => {
  for (const [name, a, b] of CASES) {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`${name}, transposeA ${ta}, transposeB ${tb}`, () => {
        const aShape = stored(a, ta);
        const bShape = stored(b, tb);
        const y = product(auto, aShape, bShape, ta, tb);
        expect(y.every(Number.isFinite)).toBe(true);
        expectClose(y, product(ort, aShape, bShape, ta, tb), 1e-5);
      });
    }
  }

  it('an empty reduction writes zeros, an empty output writes nothing', () => {
    const y = new Float32Array(6).fill(Number.NaN);
    auto.matMul(new Float32Array(0), [2, 0], new Float32Array(0), [0, 3], y, [2, 3], false, false);
    expect(Array.from(y)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(() =>
      auto.matMul(new Float32Array(0), [0, 4], randomArray(12, 3), [4, 3], new Float32Array(0), [0, 3], false, false),
    ).not.toThrow();
  });
});

// Where the addon cannot be built each of these checks only that (the fallback is tested above).
describe('the addon refuses what it cannot run, naming it', () => {
  type Raw = { matmul(dims: Int32Array, a: Float32Array, b: Float32Array, y: Float32Array): void };
  const f = (n: number): Float32Array => new Float32Array(n);
  /** Expects the addon to throw `message` for these arguments. */
  const refuses = (dims: number[], a: number, b: number, y: number, message: string): void => {
    if (!present) {
      expect(ONEDNN_BUILDABLE).toBe(false);
      return;
    }
    const raw = loadAddon() as unknown as Raw;
    expect(() => raw.matmul(Int32Array.from(dims), f(a), f(b), f(y))).toThrow(message);
  };

  it('an array whose length does not match its shape', () => {
    refuses([1, 0, 0, 2, 2, 3, 3, 4], 5, 12, 8, "onednn: matmul an array's length does not match its shape");
  });
  it('inner dims that differ', () => {
    refuses([1, 0, 0, 2, 2, 3, 4, 4], 6, 16, 8, 'onednn: matmul the inner dims of a and b differ');
  });
  it('batch axes that do not broadcast', () => {
    refuses([1, 0, 0, 3, 2, 2, 3, 3, 3, 4], 12, 36, 16, 'onednn: matmul the batch axes of a and b do not broadcast');
  });
  it('a rank outside 2 to 12, or dims that do not say one', () => {
    refuses(
      [1, 0, 0, 1, 2, 2],
      2,
      2,
      1,
      'onednn: matmul dims must be [threads, transposeA, transposeB, rank (2 to 12), aShape, bShape]',
    );
  });
  it('an empty axis (empty products stay in the caller)', () => {
    refuses(
      [1, 0, 0, 2, 0, 3, 3, 4],
      0,
      12,
      0,
      'onednn: matmul every axis must be at least 1 (empty products stay in the caller)',
    );
  });
});

describe('on 2 threads', () => {
  const two = nativeKernels({ threads: 2 });

  it('equals ONNX Runtime to 1e-5 and gives the same bits run to run', () => {
    for (const [, a, b] of CASES.slice(-3)) {
      const first = product(two, a, b, false, false);
      expectClose(first, product(ort, a, b, false, false), 1e-5);
      for (let run = 0; run < 3; run++) expect(sameBits(product(two, a, b, false, false), first)).toBe(true);
    }
  });

  it('leaves the other thread count as it was (1-thread products after 2-thread ones give the same bits)', () => {
    const before = product(auto, [1040, 192], [192, 576], false, false);
    product(two, [1040, 192], [192, 576], false, false);
    expect(sameBits(product(auto, [1040, 192], [192, 576], false, false), before)).toBe(true);
  });
});

describe('BatchMatMul on the wasm backend with the default native kernels', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels({ native: auto });
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('matches the cpu backend, transposes and broadcasting included', async () => {
    const a = randomArray(2 * 3 * 5 * 7, 11);
    const b = randomArray(7 * 4, 12);
    const run = (): Float32Array =>
      tf.tidy(() =>
        tf.matMul(tf.tensor4d(a, [2, 3, 7, 5]), tf.tensor3d(b, [1, 4, 7]), true, true).dataSync(),
      ) as Float32Array;
    const got = run();
    await tf.setBackend('cpu');
    const want = run();
    await tf.setBackend('wasm');
    expectClose(got, want, 1e-5);
  });
});

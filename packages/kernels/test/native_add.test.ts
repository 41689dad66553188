// `Add` on the oneDNN addon's threads (src/wasm/native_add.ts): large same-shape float32 sums
// and row broadcasts (bias adds) against float32 addition done here (Math.fround of the float64
// sum, one rounding, as IEEE float32 addition) at 1, 2 and 3 threads, the shipped kernel for
// everything else (one thread, other broadcasts, int32, small tensors), and that the addon really
// runs the large sums.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

/** `native` with its addon kernels under test counted (see countedNative). */
const countedAdd = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['add', 'addRows']);

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

const expectedSum = (a: Float32Array, b: Float32Array): Float32Array => a.map((v, i) => Math.fround(v + b[i]!));

describe('Add on the addon', () => {
  it('is registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    expect(nativeKernels().batchNorm !== undefined).toBe(present);
  });

  for (const threads of [1, 2, 3]) {
    for (const shape of [
      [16, 32, 32, 64],
      [3, 7, 11, 13, 31], // 93,093 values: blocks of 16,384 and a partial last one
    ]) {
      const where = threads === 1 ? 'the shipped kernel (one thread)' : 'the addon';
      it(`[${shape.join(', ')}] at ${threads} thread(s): the float32 sum of each pair, on ${where}`, () => {
        if (!present) return;
        const { native, calls } = countedAdd(nativeKernels({ threads }), `add test ${threads}, ${shape.join('x')}`);
        registerWasmTrainingKernels({ native });
        const n = shape.reduce((p, d) => p * d, 1);
        expect(n).toBeGreaterThanOrEqual(SIZE_THRESHOLD);
        const a = randomArray(n, 31);
        const b = randomArray(n, 32);
        b[5] = -a[5]!; // an exact zero
        b[7] = Number.POSITIVE_INFINITY;
        const got = tf.tidy(() => tf.add(tf.tensor(a, shape), tf.tensor(b, shape)).dataSync() as Float32Array);
        expect(calls()).toBe(threads === 1 ? 0 : 1);
        expect(sameBits(got, expectedSum(a, b))).toBe(true);
      });
    }
  }

  // Row broadcasts (the bias adds): [rows, n] + [n] in either order, b with leading 1s.
  for (const threads of [1, 2, 3]) {
    for (const [aShape, bShape] of [
      [[256, 768], [768]],
      [
        [3, 7, 11, 13, 31],
        [13, 31],
      ], // chunks of 40 rows of 403 values, a partial last one
      [[5], [2, 13107, 5]], // the vector first: 131,070 values in rows of 5
      [
        [4, 64, 257],
        [1, 1, 257],
      ],
    ] as const) {
      const where = threads === 1 ? 'the shipped kernel (one thread)' : 'the addon';
      it(`[${aShape.join(', ')}] + [${bShape.join(', ')}] at ${threads} thread(s): each row's float32 sums, on ${where}`, () => {
        if (!present) return;
        const label = `add rows test ${threads}, ${aShape.join('x')}, ${bShape.join('x')}`;
        const { native, calls } = countedAdd(nativeKernels({ threads }), label);
        registerWasmTrainingKernels({ native });
        const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);
        const a = randomArray(size(aShape), 33);
        const b = randomArray(size(bShape), 34);
        const [big, row] = a.length >= b.length ? [a, b] : [b, a];
        expect(big.length).toBeGreaterThanOrEqual(SIZE_THRESHOLD);
        row[1] = -big[1]!; // an exact zero
        big[3] = Number.POSITIVE_INFINITY;
        big[4] = -0;
        row[4] = -0;
        const got = tf.tidy(() => tf.add(tf.tensor(a, [...aShape]), tf.tensor(b, [...bShape])));
        expect(got.shape).toEqual(a.length >= b.length ? aShape : bShape);
        const values = got.dataSync() as Float32Array;
        got.dispose();
        expect(calls()).toBe(threads === 1 ? 0 : 1);
        expect(
          sameBits(
            values,
            big.map((v, i) => Math.fround(v + row[i % row.length]!)),
          ),
        ).toBe(true);
        expect(Object.is(values[4], -0)).toBe(true);
      });
    }
  }

  it('other broadcasts, int32 and small sums keep the shipped kernel (and give its results)', () => {
    if (!present) return;
    const { native, calls } = countedAdd(nativeKernels({ threads: 2 }), 'fallback test');
    registerWasmTrainingKernels({ native });
    const n = SIZE_THRESHOLD * 2;
    const a = randomArray(n, 41);
    const column = randomArray(n / 64, 42);
    const broadcast = tf.tidy(
      () => tf.add(tf.tensor(a, [n / 64, 64]), tf.tensor(column, [n / 64, 1])).dataSync() as Float32Array,
    );
    expect(
      sameBits(
        broadcast,
        a.map((v, i) => Math.fround(v + column[Math.floor(i / 64)]!)),
      ),
    ).toBe(true);
    const ints = tf.tidy(() => Array.from(tf.add(tf.range(0, n, 1, 'int32'), tf.range(0, n, 1, 'int32')).dataSync()));
    expect(ints[n - 1]).toBe(2 * (n - 1));
    const small = randomArray(100, 43);
    const smallSum = tf.tidy(() => tf.add(tf.tensor(small), tf.tensor(small)).dataSync() as Float32Array);
    expect(sameBits(smallSum, expectedSum(small, small))).toBe(true);
    expect(calls()).toBe(0);
  });

  it('the addon refuses a row that does not divide the matrix, or an output of another length', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as { addRows(...args: unknown[]): void };
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => raw.addRows(2, f(12), f(5), f(12))).toThrow(
      "onednn: addRows b has 5 values, which do not divide a's 12",
    );
    expect(() => raw.addRows(2, f(12), f(0), f(12))).toThrow(
      "onednn: addRows b has 0 values, which do not divide a's 12",
    );
    expect(() => raw.addRows(2, f(12), f(4), f(8))).toThrow('onednn: addRows y has 8 values, expected 12');
    expect(() => raw.addRows(0, f(12), f(4), f(12))).toThrow('onednn: addRows takes (threads >= 1, a, b, y)');
  });

  it('without the addon the shipped kernel runs (kernels without batch norm)', () => {
    const native = nativeKernels({ batchNorm: 'wasm' });
    expect(native.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native });
    const n = SIZE_THRESHOLD + 3;
    const a = randomArray(n, 51);
    const got = tf.tidy(() => tf.add(tf.tensor(a), tf.tensor(a)).dataSync() as Float32Array);
    expect(sameBits(got, expectedSum(a, a))).toBe(true);
  });
});

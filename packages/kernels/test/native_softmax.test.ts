// Softmax over the last axis on the oneDNN addon's threads (createNativeSoftmaxKernel in
// src/wasm/native_layer_norm.ts): against the wasm backend's own kernel (XNNPACK's) to the bit at
// 1, 2 and 3 threads, on ViT-tiny's attention [48, 65, 65] and BERT-mini's [8, 4, 128, 128], widths
// that are not a multiple of 4 (1, 3, 33, one row of 70,001), masked (-Infinity) and constant rows,
// values below the exponential's cutoff, infinities and NaN; against float64 within a bound; that
// the addon really runs the large tensors; and the fallbacks (small tensors, no addon).
import * as tf from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';
import { bitDifference } from './helpers/bits.js';

const countedSoftmax = (native: NativeKernels, label: string) => countedNative(native, label, 'batchNorm', ['softmax']);

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

/**
 * Logits: N(0, 3)-like values; every 10th row with its odd entries masked (-Infinity), every 11th
 * constant, every 12th spread over [-1e4, 1e4] (most below the exponential's cutoff); with
 * `special`, row 1 holds a NaN, row 2 a +Infinity, row 3 is all -Infinity.
 */
function logits(rows: number, cols: number, seed: number, special: boolean): Float32Array {
  const x = randomArray(rows * cols, seed).map((v) => v * 5);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    if (r % 10 === 4) for (let j = 1; j < cols; j += 2) row[j] = Number.NEGATIVE_INFINITY;
    else if (r % 11 === 5) row.fill(2.5);
    else if (r % 12 === 6) for (let j = 0; j < cols; j++) row[j] = row[j]! * 2000;
  }
  if (special && rows > 3) {
    x[cols + cols - 1] = Number.NaN;
    x[2 * cols] = Number.POSITIVE_INFINITY;
    x.subarray(3 * cols, 4 * cols).fill(Number.NEGATIVE_INFINITY);
  }
  return x;
}

/** Equal bit for bit, where a NaN equals any NaN. */
const sameBits = (got: Float32Array, want: Float32Array): string => bitDifference(got, want, 'shipped kernel');

const run = (x: Float32Array, shape: number[]): Float32Array =>
  tf.tidy(() => (tf.softmax(tf.tensor(x, shape)) as Tensor).dataSync() as Float32Array);

/** The shipped kernel's result (registered without native kernels). */
function shipped(x: Float32Array, shape: number[]): Float32Array {
  registerWasmTrainingKernels();
  return run(x, shape);
}

/**
 * The largest |got - exact| / bound over the rows without NaN or infinities, exact in float64
 * from the same float32 logits. Bound, in units of 2^-24 exact (+ 2^-126): cols / 4 + 10 (the
 * sum's rounding, the exponential's error of a few ulps, the reciprocal and the product), plus
 * |x - max| (float32's rounding of x - max, which exp turns into a relative error that size) for
 * the value itself and, through the sum, for the row's values weighted by their exponentials.
 */
function float64Error(x: Float32Array, cols: number, got: Float32Array): number {
  let worst = 0;
  const e = new Float64Array(cols);
  for (let r = 0; r < x.length / cols; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    if (row.some((v) => Number.isNaN(v) || v === Number.POSITIVE_INFINITY) || row.every((v) => v === -Infinity)) {
      continue;
    }
    let m = Number.NEGATIVE_INFINITY;
    for (const v of row) m = Math.max(m, v);
    let sum = 0;
    let weighted = 0;
    for (let j = 0; j < cols; j++) {
      e[j] = Math.exp(row[j]! - m);
      sum += e[j]!;
      if (e[j]! > 0) weighted += e[j]! * (m - row[j]!);
    }
    for (let j = 0; j < cols; j++) {
      const exact = e[j]! / sum;
      const relative = exact > 0 ? (cols / 4 + 10 + (m - row[j]!) + weighted / sum) * 2 ** -24 * exact : 0;
      const bound = relative + 2 ** -126;
      worst = Math.max(worst, Math.abs(got[r * cols + j]! - exact) / bound);
    }
  }
  return worst;
}

describe('Softmax on the addon', () => {
  it('is registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  for (const shape of [
    [48, 65, 65], // ViT-tiny's attention: rows of 65 (a tail of 1 after groups of 4)
    [8, 4, 128, 128], // BERT-mini's
    [2000, 33],
    [30000, 3], // no group of 4 at all
    [65536, 1], // every output 1
    [1, 70001], // one long row
    [40, 64], // below the threshold: the shipped kernel everywhere
  ]) {
    const n = shape.reduce((p, d) => p * d, 1);
    const cols = shape[shape.length - 1]!;
    const large = n >= SIZE_THRESHOLD;
    for (const threads of [1, 2, 3]) {
      const where = large ? 'the addon' : 'the shipped kernel';
      it(`[${shape.join(', ')}] at ${threads} thread(s): the shipped kernel's bits, on ${where}`, () => {
        if (!present) return;
        const x = logits(n / cols, cols, 41 + n, true);
        const want = shipped(x, shape);
        const { native, calls } = countedSoftmax(
          nativeKernels({ threads }),
          `softmax test ${threads}, ${shape.join('x')}`,
        );
        registerWasmTrainingKernels({ native });
        const got = run(x, shape);
        expect(calls()).toBe(large ? 1 : 0);
        expect(sameBits(got, want)).toBe('same');
        if (threads === 3) expect(float64Error(x, cols, got)).toBeLessThanOrEqual(1);
        if (cols === 1) expect(got.every((v, i) => v === 1 || (i >= 1 && i < 4))).toBe(true);
        if (n / cols > 3) {
          // A NaN or +Infinity makes its row NaN; an all -Infinity row is NaN (0 / 0) too.
          for (const r of [1, 2, 3]) expect(Number.isNaN(got[r * cols])).toBe(true);
        }
      });
    }
  }

  it('a masked row gives its -Infinity entries exactly 0 and sums to 1 over the rest', () => {
    if (!present) return;
    registerWasmTrainingKernels({ native: nativeKernels({ threads: 2 }) });
    const x = logits(48 * 65, 65, 3, false);
    const y = run(x, [48, 65, 65]);
    const row = y.subarray(4 * 65, 5 * 65); // row 4: odd entries masked
    let sum = 0;
    for (let j = 0; j < 65; j++) {
      if (j % 2 === 1) expect(row[j]).toBe(0);
      sum += row[j]!;
    }
    expect(sum).toBeCloseTo(1, 6);
  });

  it('int32 logits and small tensors keep the shipped kernel', () => {
    if (!present) return;
    const { native, calls } = countedSoftmax(nativeKernels({ threads: 2 }), 'fallback test');
    registerWasmTrainingKernels({ native });
    tf.tidy(() => {
      const y = tf.engine().runKernel(tf.Softmax, { logits: tf.zeros([SIZE_THRESHOLD, 2], 'int32') }, { dim: 1 });
      expect((y as Tensor).shape).toEqual([SIZE_THRESHOLD, 2]);
      tf.softmax(tf.zeros([SIZE_THRESHOLD - 1])).dataSync();
    });
    expect(calls()).toBe(0);
  });

  it('the addon refuses arrays whose lengths do not match, naming the array, and bad dims', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<'softmax', (...args: unknown[]) => void>;
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => raw.softmax(Int32Array.of(2, 3, 5), f(15), f(14))).toThrow(
      'onednn: softmax y has 14 values, expected 15',
    );
    expect(() => raw.softmax(Int32Array.of(2, 0, 5), f(0), f(0))).toThrow(
      'onednn: softmax threads, rows and cols must be positive',
    );
    expect(() => raw.softmax(Int32Array.of(2, 3, 5), f(15))).toThrow('onednn: softmax takes (dims, x, y)');
  });

  it('without the addon the shipped kernel runs (kernels without batch norm)', () => {
    const shape = [48, 65, 65];
    const x = logits(48 * 65, 65, 77, true);
    const want = shipped(x, shape);
    const native = nativeKernels({ batchNorm: 'wasm', threads: 2 });
    expect(native.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native });
    expect(sameBits(run(x, shape), want)).toBe('same');
  });
});

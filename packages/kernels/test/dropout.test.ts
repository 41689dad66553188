// Dropout masks (src/random/philox.ts, src/wasm/dropout.ts, native/dropout.cc): Philox4x32-10
// against Random123's published known answers; the draw's keep threshold and scale; any range of
// a mask equal to that slice of the whole; keep rates and independence across seeds and neighbours;
// the addon's masks equal to the JavaScript ones at 1, 2 and 3 threads; and the TF.js kernel on
// wasm with and without the addon.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadOneDnnRandom } from '../src/native/onednn_random.js';
import { dropoutDraw, dropoutMultiplierValues, fillDropoutMultiplier, philox4x32 } from '../src/random/philox.js';
import { registerWasmTrainingKernels } from '../src/index.js';
import { DROPOUT_MULTIPLIER } from '../src/wasm/dropout.js';
import { nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';

const hex = (words: Uint32Array): string[] => [...words].map((w) => w.toString(16).padStart(8, '0'));

/** Fraction of positions where two masks agree (both keep or both drop). */
function agreement(a: Float32Array, b: Float32Array, lag = 0): number {
  let same = 0;
  for (let i = 0; i + lag < a.length; i++) same += a[i]! > 0 === b[i + lag]! > 0 ? 1 : 0;
  return same / (a.length - lag);
}

const kept = (m: Float32Array): number => m.reduce((n, v) => n + (v > 0 ? 1 : 0), 0) / m.length;

describe('Philox4x32-10', () => {
  it("gives Random123's known answers (kat_vectors: counter, key -> four words)", () => {
    const out = new Uint32Array(4);
    philox4x32(0, 0, 0, 0, 0, 0, out);
    expect(hex(out)).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    philox4x32(ones, ones, ones, ones, ones, ones, out);
    expect(hex(out)).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
    expect(hex(out)).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });
});

describe('the dropout draw', () => {
  it('keeps the values whose top 24 bits are below round((1 - rate) 2^24), scaled as tf.dropout scales', () => {
    const draw = dropoutDraw(0.1, 2 ** 33 + 5);
    expect(draw.keepBelow).toBe(Math.round(0.9 * 2 ** 24));
    expect(draw.scale).toBe(Math.fround(1 / Math.fround(0.9)));
    expect([draw.key0, draw.key1]).toEqual([5, 2]);
    expect(dropoutDraw(0, 1).keepBelow).toBe(2 ** 24);
    // Value i from word i % 4 of the block at counter floor(i / 4).
    const words = new Uint32Array(4);
    philox4x32(3, 0, 0, 0, 5, 2, words);
    const mask = dropoutMultiplierValues(16, 0.1, 2 ** 33 + 5);
    for (let w = 0; w < 4; w++) expect(mask[12 + w]).toBe(words[w]! >>> 8 < draw.keepBelow ? draw.scale : 0);
  });

  it('refuses a rate outside [0, 1) and a seed that is not an integer in [0, 2^53), naming the value', () => {
    expect(() => dropoutDraw(1, 0)).toThrow('dropout rate must be in [0, 1), got 1');
    expect(() => dropoutDraw(Number.NaN, 0)).toThrow('got NaN');
    expect(() => dropoutDraw(0.1, -1)).toThrow('dropout seed must be an integer in [0, 2^53), got -1');
    expect(() => dropoutDraw(0.1, 1.5)).toThrow('got 1.5');
    expect(() => dropoutDraw(0.1, 2 ** 53)).toThrow('got 9007199254740992');
  });

  it('fills any range [from, to) with that slice of the whole mask', () => {
    const whole = dropoutMultiplierValues(103, 0.3, 11);
    const draw = dropoutDraw(0.3, 11);
    for (const [from, to] of [
      [0, 103],
      [1, 2],
      [3, 9],
      [4, 8],
      [97, 103],
      [50, 50],
    ] as const) {
      const out = new Float32Array(103).fill(-1);
      fillDropoutMultiplier(draw, from, to, out);
      expect([...out.subarray(from, to)]).toEqual([...whole.subarray(from, to)]);
      expect(out.slice(0, from).every((v) => v === -1) && out.slice(to).every((v) => v === -1)).toBe(true);
    }
  });

  it('keeps 1 - rate of the values, independently between seeds and between neighbours', () => {
    const n = 1 << 20;
    for (const rate of [0.1, 0.5]) {
      // Binomial standard deviation sqrt(rate (1 - rate) / n) <= 4.9e-4: these bounds are 4 of them.
      expect(Math.abs(kept(dropoutMultiplierValues(n, rate, 1234)) - (1 - rate))).toBeLessThan(0.002);
    }
    const a = dropoutMultiplierValues(n, 0.1, 1000);
    const b = dropoutMultiplierValues(n, 0.1, 1001);
    // Independent masks agree on 0.9^2 + 0.1^2 = 0.82 of the values.
    expect(Math.abs(agreement(a, b) - 0.82)).toBeLessThan(0.002);
    expect(Math.abs(agreement(a, a, 1) - 0.82)).toBeLessThan(0.002);
    expect(Math.abs(agreement(a, a, 4) - 0.82)).toBeLessThan(0.002);
    expect(Math.abs(agreement(a, dropoutMultiplierValues(n, 0.1, 1000 + 2 ** 32)) - 0.82)).toBeLessThan(0.002);
    expect(new Set(a)).toEqual(new Set([0, Math.fround(1 / Math.fround(0.9))]));
  });
});

describe('dropout masks on the addon', () => {
  const random1 = loadOneDnnRandom({ threads: 1 });

  it('loads wherever setup builds the addon', () => {
    if (ONEDNN_BUILDABLE) expect(random1, 'run `pnpm --filter @mrl/kernels run build:native`').toBeDefined();
  });

  it('gives the JavaScript masks to the bit at 1, 2 and 3 threads (odd lengths, seeds past 2^32)', () => {
    if (random1 === undefined) return;
    for (const threads of [1, 2, 3]) {
      const random = loadOneDnnRandom({ threads })!;
      for (const [n, rate, seed] of [
        [1, 0.1, 0],
        [5, 0.5, 7],
        [8193, 0.1, 2 ** 32 + 3],
        [100_003, 0.25, 2 ** 52 + 1],
        [262_144, 0.1, 424242],
      ] as const) {
        const y = new Float32Array(n).fill(-1);
        random.dropoutMultiplier(dropoutDraw(rate, seed), y);
        expect(Buffer.from(y.buffer).equals(Buffer.from(dropoutMultiplierValues(n, rate, seed).buffer))).toBe(true);
      }
    }
  });
});

describe('MrlDropoutMultiplier on wasm', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
  });
  afterAll(() => {
    registerWasmTrainingKernels();
  });

  it('makes the mask of its shape, rate and seed, with the addon and without', () => {
    for (const native of [nativeKernels({ threads: 2 }), undefined]) {
      registerWasmTrainingKernels(native === undefined ? {} : { native });
      const attrs = { shape: [3, 5, 7], rate: 0.2, seed: 99 };
      const mask = tf.engine().runKernel(DROPOUT_MULTIPLIER, {}, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      expect(mask.shape).toEqual([3, 5, 7]);
      expect(mask.dtype).toBe('float32');
      expect([...(mask.dataSync() as Float32Array)]).toEqual([...dropoutMultiplierValues(105, 0.2, 99)]);
      mask.dispose();
    }
  });
});

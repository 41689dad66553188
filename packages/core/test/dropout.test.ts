// dropout and dropoutMultiplier: the same mask bits on wasm (the kernel, with the addon's threads)
// and on the cpu backend (drawn in JavaScript); the multiplier's values; the gradient of dropout
// is dy times the mask; rate 0 is the identity; bad rates and seeds are refused by name.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { dropoutMultiplierValues, registerWasmTrainingKernels } from '@mrl/kernels';
import { loadOnnxRuntimeKernels } from '@mrl/kernels/native';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MrlError } from '../src/errors.js';
import { dropout, dropoutMultiplier } from '../src/ops/dropout.js';

const native = loadOnnxRuntimeKernels({ threads: 2 });

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels(native === undefined ? {} : { native });
});
afterAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

async function on<T>(backend: string, fn: () => T): Promise<T> {
  await tf.setBackend(backend);
  return fn();
}

describe('dropoutMultiplier', () => {
  it('draws the same bits on wasm and on cpu, 0 or 1 / (1 - rate) in float32', async () => {
    const shape = [8, 4, 33, 33];
    const seed = 2 ** 40 + 17;
    const read = () => tf.tidy(() => dropoutMultiplier(shape, 0.1, seed).dataSync() as Float32Array);
    const wasm = await on('wasm', read);
    const cpu = await on('cpu', read);
    expect(Buffer.from(wasm.buffer).equals(Buffer.from(cpu.buffer))).toBe(true);
    expect(Buffer.from(wasm.buffer).equals(Buffer.from(dropoutMultiplierValues(wasm.length, 0.1, seed).buffer))).toBe(
      true,
    );
    expect(new Set(wasm)).toEqual(new Set([0, Math.fround(1 / Math.fround(0.9))]));
  });

  it('refuses a rate outside [0, 1) or a seed that is not a non-negative integer, naming it', async () => {
    await tf.setBackend('wasm');
    for (const [rate, seed, message] of [
      [1, 0, 'dropout rate must be in [0, 1), got 1.'],
      [-0.1, 0, 'got -0.1.'],
      [0.1, 0.5, 'dropout seed must be an integer in [0, 2^53), got 0.5.'],
      [0.1, -3, 'got -3.'],
    ] as const) {
      expect(() => dropoutMultiplier([4], rate, seed)).toThrow(message);
      expect(() => dropout(tf.ones([4]), rate, seed)).toThrow(MrlError);
    }
  });
});

describe('dropout', () => {
  it('is x times the mask, with gradient dy times the mask, on wasm and on cpu', async () => {
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      tf.tidy(() => {
        const x = tf.randomNormal([64, 48], 0, 1, 'float32', 3);
        const dy = tf.randomNormal([64, 48], 0, 1, 'float32', 4);
        const mask = dropoutMultiplier([64, 48], 0.25, 77);
        const f = (t: tf.Tensor) => tf.sum(tf.mul(dropout(t, 0.25, 77), dy));
        expect(f(x).dataSync()[0]).toBeCloseTo(tf.sum(tf.mul(tf.mul(x, mask), dy)).dataSync()[0]!, 3);
        expect([...tf.grad(f)(x).dataSync()]).toEqual([...tf.mul(dy, mask).dataSync()]);
      });
    }
  });

  it('returns x itself at rate 0', async () => {
    await tf.setBackend('wasm');
    const x = tf.ones([3]);
    expect(dropout(x, 0, 1)).toBe(x);
    x.dispose();
  });
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { onBackend, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

/** tf.split of a [shape] tensor on `backend`, as shapes and exact values. */
async function splitOn(
  backend: 'cpu' | 'wasm',
  values: Float32Array | Int32Array,
  shape: number[],
  sizes: number | number[],
  axis: number,
) {
  return onBackend(backend, () =>
    tf.tidy(() => {
      const x = tf.tensor(values, shape, values instanceof Int32Array ? 'int32' : 'float32');
      const parts = tf.split(x, sizes, axis).map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
      x.dispose();
      return { parts };
    }),
  );
}

describe.each(NATIVE_OPTIONS)('SplitV on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  const cases: [string, number[], number | number[], number][] = [
    ['nesting chunks along the columns of a table', [37, 64], [8, 8, 16, 32], 1],
    ['uneven sizes with -1 along rows of a 3-D tensor', [9, 4, 5], [2, -1, 3], 0],
    ['equal parts along the middle axis', [3, 12, 2], 4, 1],
    ['negative axis', [6, 10], [3, 7], -1],
  ];
  for (const [label, shape, sizes, axis] of cases) {
    it(`${label} equals cpu exactly`, async () => {
      const values = randomArray(
        shape.reduce((a, b) => a * b, 1),
        41,
      );
      const cpu = await splitOn('cpu', values, shape, sizes, axis);
      const wasm = await splitOn('wasm', values, shape, sizes, axis);
      expect(wasm.parts).toEqual(cpu.parts);
    });
  }

  it('int32 (the shipped kernel) and empty parts', async () => {
    const ints = Int32Array.from({ length: 24 }, (_, i) => i * 7 - 40);
    expect((await splitOn('wasm', ints, [4, 6], [0, 2, 4], 1)).parts).toEqual(
      (await splitOn('cpu', ints, [4, 6], [0, 2, 4], 1)).parts,
    );
    const floats = randomArray(24, 3);
    expect((await splitOn('wasm', floats, [4, 6], [0, 6], 1)).parts).toEqual(
      (await splitOn('cpu', floats, [4, 6], [0, 6], 1)).parts,
    );
  });

  it('frees every intermediate', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d(randomArray(40, 2), [4, 10]);
    const before = tf.backend().numDataIds();
    tf.dispose(tf.split(x, [3, 7], 1));
    expect(tf.backend().numDataIds()).toBe(before);
    x.dispose();
  });
});

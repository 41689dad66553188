import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { createGatherKernel } from '../src/wasm/gather.js';
import { isOurs } from '../src/wasm/util.js';
import { kernelOn, randomHost } from './helpers/close.js';
import type { HostTensor } from './helpers/close.js';

const ids = (values: number[], shape = [values.length]): HostTensor => ({
  values: Int32Array.from(values),
  shape,
  dtype: 'int32',
});

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});
afterAll(() => registerWasmTrainingKernels());

describe('GatherV2 on wasm', () => {
  it('is ours, wrapping the shipped kernel', () => {
    expect(isOurs(tf.getKernel('GatherV2', 'wasm')!.kernelFunc)).toBe(true);
  });

  // Every case against the cpu backend, value for value (a gather copies: no tolerance).
  const cases: [string, HostTensor, HostTensor, { axis: number; batchDims?: number }][] = [
    ['embedding rows, repeated ids', randomHost([50, 16], 3), ids([4, 0, 49, 4, 17, 4]), { axis: 0 }],
    ['2-D ids', randomHost([9, 5], 4), ids([1, 2, 3, 8, 0, 1], [2, 3]), { axis: 0 }],
    ['a 1-D table', randomHost([7], 5), ids([6, 0, 3]), { axis: 0 }],
    ['a 3-D table', randomHost([4, 3, 2], 6), ids([3, 3, 0]), { axis: 0 }],
    ['a negative axis naming axis 0', randomHost([6, 4], 7), ids([5, 1]), { axis: -2 }],
    ['axis 1 (the shipped kernel)', randomHost([3, 8], 8), ids([7, 0, 2]), { axis: 1 }],
    ['batch dims (the shipped kernel)', randomHost([2, 5, 3], 9), ids([0, 4, 1, 1], [2, 2]), { axis: 1, batchDims: 1 }],
    ['no ids', randomHost([5, 3], 10), ids([]), { axis: 0 }],
    [
      'int32 values',
      { values: Int32Array.from({ length: 12 }, (_, i) => i * 7 - 40), shape: [4, 3], dtype: 'int32' },
      ids([2, 2, 0]),
      { axis: 0 },
    ],
  ];
  for (const [name, x, indices, attrs] of cases) {
    it(`${name}: the cpu backend's values and shape`, async () => {
      const wasm = await kernelOn('wasm', 'GatherV2', { x, indices }, { batchDims: 0, ...attrs });
      const cpu = await kernelOn('cpu', 'GatherV2', { x, indices }, { batchDims: 0, ...attrs });
      expect(wasm.shape).toEqual(cpu.shape);
      expect(Array.from(wasm.values)).toEqual(Array.from(cpu.values));
    });
  }

  it('copies whole rows for axis 0 and leaves the shipped kernel uncalled', async () => {
    await tf.setBackend('wasm'); // kernelOn('cpu', ...) above leaves the cpu backend active
    let shipped = 0;
    const original = tf.getKernel('GatherV2', 'wasm')!;
    const counting = createGatherKernel(() => ({
      ...original,
      kernelFunc: (args) => {
        shipped++;
        return original.kernelFunc(args);
      },
    }));
    tf.unregisterKernel('GatherV2', 'wasm');
    tf.registerKernel(counting);
    try {
      const table = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      expect(tf.gather(table, tf.tensor1d([2, 0], 'int32')).arraySync()).toEqual([
        [5, 6],
        [1, 2],
      ]);
      expect(shipped).toBe(0);
      expect(tf.gather(table, tf.tensor1d([1, 0], 'int32'), 1).arraySync()).toEqual([
        [2, 1],
        [4, 3],
        [6, 5],
      ]);
      expect(shipped).toBe(1);
    } finally {
      tf.unregisterKernel('GatherV2', 'wasm');
      tf.registerKernel(original);
    }
  });

  it('refuses an index out of range as the shipped kernel does, naming it', async () => {
    await tf.setBackend('wasm');
    expect(isOurs(tf.getKernel('GatherV2', 'wasm')!.kernelFunc)).toBe(true);
    const table = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    expect(() => tf.gather(table, tf.tensor1d([0, 2], 'int32'))).toThrow(
      'GatherV2: the index value 2 is not in [0, 1]',
    );
    expect(() => tf.gather(table, tf.tensor1d([-1], 'int32'))).toThrow('GatherV2: the index value -1 is not in [0, 1]');
  });
});

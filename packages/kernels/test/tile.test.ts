import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { collapseTileDims } from '../src/wasm/tile.js';
import { expectKernelMatchesCpu, kernelOn, randomHost } from './helpers/close.js';
import type { HostTensor } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

describe('Tile on wasm', () => {
  const cases = [
    { name: 'batch-norm gradient [1,1,1,16] x [8,5,6,1]', x: [1, 1, 1, 16], reps: [8, 5, 6, 1] },
    { name: '1-D', x: [7], reps: [5] },
    { name: 'all reps 1', x: [3, 4], reps: [1, 1] },
    { name: 'column to matrix [9,1] x [1,40]', x: [9, 1], reps: [1, 40] },
    { name: 'every dim tiled [2,3,4] x [3,2,2]', x: [2, 3, 4], reps: [3, 2, 2] },
    { name: 'rank 5 mixed [2,1,3,1,5] x [1,4,1,3,2]', x: [2, 1, 3, 1, 5], reps: [1, 4, 1, 3, 2] },
    { name: 'long rows [3,100] x [2,3]', x: [3, 100], reps: [2, 3] },
    { name: 'scalar-like [1] x [1000]', x: [1], reps: [1000] },
  ];
  for (const c of cases) {
    it(`${c.name} matches cpu`, async () => {
      await expectKernelMatchesCpu('Tile', { x: randomHost(c.x, 41) }, { reps: c.reps }, 0);
    });
  }

  it('tiles int32 and bool exactly', async () => {
    const int: HostTensor = { values: Int32Array.from([1, -2, 3, 4, 5, 6]), shape: [2, 3], dtype: 'int32' };
    const bool: HostTensor = { values: Uint8Array.from([1, 0, 0, 1]), shape: [4, 1], dtype: 'bool' };
    for (const [x, reps] of [
      [int, [2, 2]],
      [bool, [2, 3]],
    ] as const) {
      const wasm = await kernelOn('wasm', 'Tile', { x }, { reps });
      const cpu = await kernelOn('cpu', 'Tile', { x }, { reps });
      expect(wasm.shape).toEqual(cpu.shape);
      expect(Array.from(wasm.values)).toEqual(Array.from(cpu.values));
    }
  });

  it('handles an empty output', async () => {
    const wasm = await kernelOn('wasm', 'Tile', { x: randomHost([3, 2], 42) }, { reps: [0, 2] });
    expect(wasm.shape).toEqual([0, 4]);
  });

  it('collapses the batch-norm case to a 1-D tile', () => {
    expect(collapseTileDims([1, 1, 1, 64], [32, 16, 16, 1])).toEqual([{ size: 64, rep: 32 * 16 * 16 }]);
    expect(collapseTileDims([2, 3], [1, 1])).toEqual([{ size: 6, rep: 1 }]);
    expect(collapseTileDims([9, 1], [1, 40])).toEqual([
      { size: 9, rep: 1 },
      { size: 1, rep: 40 },
    ]);
  });
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { expectClose, expectKernelMatchesCpu, kernelOn, randomHost } from './helpers/close.js';
import type { HostTensor } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

function ids(shape: number[], numSegments: number, seed: number, outOfRange = false): HostTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = Int32Array.from(randomHost([size], seed).values, (v, i) => {
    const id = Math.floor(((v + 1) / 2) * numSegments);
    if (outOfRange && i % 5 === 0) return i % 10 === 0 ? -1 : numSegments + 2;
    return id;
  });
  return { values, shape, dtype: 'int32' };
}

describe('UnsortedSegmentSum on wasm', () => {
  const cases = [
    { name: '1-D', x: [20], ids: [20], numSegments: 6 },
    { name: 'embedding rows 50x8 into 13', x: [50, 8], ids: [50], numSegments: 13 },
    { name: '3-D rows 7x3x4 into 4', x: [7, 3, 4], ids: [7], numSegments: 4 },
    { name: 'more segments than ids', x: [4, 16], ids: [4], numSegments: 100 },
  ];
  for (const c of cases) {
    it(`${c.name} matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'UnsortedSegmentSum',
        { x: randomHost(c.x, 31), segmentIds: ids(c.ids, c.numSegments, 32) },
        { numSegments: c.numSegments },
      );
    });
  }

  it('accepts ids covering two leading dims (cpu reference on the flattened rows)', async () => {
    const x = randomHost([3, 5, 2], 38);
    const segmentIds = ids([3, 5], 9, 39);
    const wasm = await kernelOn('wasm', 'UnsortedSegmentSum', { x, segmentIds }, { numSegments: 9 });
    const cpu = await kernelOn(
      'cpu',
      'UnsortedSegmentSum',
      { x: { ...x, shape: [15, 2] }, segmentIds: { ...segmentIds, shape: [15] } },
      { numSegments: 9 },
    );
    expect(wasm.shape).toEqual([9, 2]);
    expectClose(wasm.values, cpu.values);
  });

  it('drops ids outside [0, numSegments), as cpu does', async () => {
    await expectKernelMatchesCpu(
      'UnsortedSegmentSum',
      { x: randomHost([40, 3], 33), segmentIds: ids([40], 7, 34, true) },
      { numSegments: 7 },
    );
  });

  it('sums int32 data exactly', async () => {
    const x: HostTensor = {
      values: Int32Array.from({ length: 30 }, (_, i) => i * 7 - 50),
      shape: [10, 3],
      dtype: 'int32',
    };
    const wasm = await kernelOn('wasm', 'UnsortedSegmentSum', { x, segmentIds: ids([10], 4, 35) }, { numSegments: 4 });
    const cpu = await kernelOn('cpu', 'UnsortedSegmentSum', { x, segmentIds: ids([10], 4, 35) }, { numSegments: 4 });
    expect(Array.from(wasm.values)).toEqual(Array.from(cpu.values));
  });

  it('a 30522x128 table with 4096 ids matches cpu', async () => {
    const table = 30522;
    const wasm = await kernelOn(
      'wasm',
      'UnsortedSegmentSum',
      { x: randomHost([4096, 128], 36), segmentIds: ids([4096], table, 37) },
      { numSegments: table },
    );
    // The cpu kernel compares every id against every segment (30522 x 4096): too slow here, so
    // the reference is the definition.
    const x = randomHost([4096, 128], 36).values;
    const s = ids([4096], table, 37).values;
    const expected = new Float32Array(table * 128);
    for (let i = 0; i < 4096; i++) for (let k = 0; k < 128; k++) expected[s[i]! * 128 + k]! += x[i * 128 + k]!;
    expect(wasm.shape).toEqual([table, 128]);
    expectClose(wasm.values, expected);
  });
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { expectKernelMatchesCpu, randomHost } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

// Shapes above the native threshold (and one below, which stays on the shipped kernel).
const BIG: [number, number] = [154, 1031];

describe.each(NATIVE_OPTIONS)('Sum and Mean on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  it('the test shapes straddle the native threshold', () => {
    expect(BIG[0] * BIG[1]).toBeGreaterThan(SIZE_THRESHOLD);
    expect(64 * 64).toBeLessThan(SIZE_THRESHOLD);
  });

  const sums: [string, number[], number | number[], boolean][] = [
    ['over rows (a bias gradient)', BIG, 0, false],
    ['over columns, keepDims', BIG, 1, true],
    ['over the first and last of three axes', [16, 65, 70], [0, 2], false],
    ['over everything', BIG, [0, 1], false],
    ['below the threshold', [64, 64], 0, false],
  ];
  for (const [label, shape, axis, keepDims] of sums) {
    for (const kernel of ['Sum', 'Mean']) {
      it(`${kernel} ${label} matches cpu`, async () => {
        await expectKernelMatchesCpu(kernel, { x: randomHost(shape, 51) }, { axis, keepDims });
      });
    }
  }

  it('int32 input keeps the shipped kernel', async () => {
    const a = tf.tensor1d(
      Int32Array.from({ length: SIZE_THRESHOLD + 5 }, (_, i) => i % 97),
      'int32',
    );
    const sum = tf.sum(a);
    expect(sum.dtype).toBe('int32');
    let expected = 0;
    for (let i = 0; i < SIZE_THRESHOLD + 5; i++) expected += i % 97;
    expect(sum.dataSync()[0]).toBe(expected);
    tf.dispose([a, sum]);
  });
});

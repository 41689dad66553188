import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from '../../src/kernels/index.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

const isOurs = (name: string) =>
  (tf.getKernel(name, 'wasm')?.kernelFunc as unknown as Record<symbol, unknown> | undefined)?.[
    Symbol.for('mrl/wasmTrainingKernel')
  ] === true;

describe('registerWasmTrainingKernels', () => {
  it('lists the kernels it installs', () => {
    expect([...WASM_TRAINING_KERNELS].sort()).toEqual(
      [
        'BatchMatMul',
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'Identity',
        'Tile',
        'UnsortedSegmentSum',
        '_FusedMatMul',
      ].sort(),
    );
  });

  it('installs every listed kernel, and a second call changes nothing', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    registerWasmTrainingKernels();
    const first = WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
    expect(WASM_TRAINING_KERNELS.every(isOurs)).toBe(true);
    registerWasmTrainingKernels();
    expect(WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc)).toEqual(first);
  });

  it('leaves the other backends alone', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')).toBeDefined();
    expect(WASM_TRAINING_KERNELS.some((name) => (tf.getKernel(name, 'cpu')?.kernelFunc as unknown as Record<symbol, unknown>)?.[Symbol.for('mrl/wasmTrainingKernel')])).toBe(false);
  });
});

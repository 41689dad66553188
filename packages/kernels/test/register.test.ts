import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from '../src/index.js';
import { loadOnnxRuntimeKernels } from '../src/native/onnxruntime.js';

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
        'Add',
        'BatchMatMul',
        'Conv2D',
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'GatherV2',
        'Identity',
        'MrlAdamWUpdate',
        'MrlAddRelu',
        'MrlReluGrad',
        'MrlRunningMoments',
        'MrlBatchNormTraining',
        'MrlBatchNormTrainingGrad',
        'MrlSgdMomentumUpdate',
        'MrlDropoutMultiplier',
        'MrlGelu',
        'MrlGeluGrad',
        'MrlLayerNorm',
        'MrlLayerNormGrad',
        'Softmax',
        'SplitV',
        'Transpose',
        'Concat',
        'Slice',
        'Sum',
        'Mean',
        'Multiply',
        'Sub',
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
    expect(
      WASM_TRAINING_KERNELS.some(
        (name) =>
          (tf.getKernel(name, 'cpu')?.kernelFunc as unknown as Record<symbol, unknown>)?.[
            Symbol.for('mrl/wasmTrainingKernel')
          ],
      ),
    ).toBe(false);
  });

  it('rebuilds the product kernels on native kernels, and back', () => {
    const native = loadOnnxRuntimeKernels();
    expect(native).toBeDefined();
    registerWasmTrainingKernels();
    const onWasm = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    registerWasmTrainingKernels({ native: native! });
    const onNative = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    expect(onNative).not.toBe(onWasm);
    expect(isOurs('BatchMatMul')).toBe(true);
    registerWasmTrainingKernels({ native: native! }); // the same native kernels: a no-op
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc).toBe(onNative);
    registerWasmTrainingKernels();
    const back = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    expect(back).not.toBe(onNative);
    const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 4]));
    expect(Array.from(y.dataSync())).toEqual(new Array(8).fill(3));
    y.dispose();
  });

  it('rejects a thread count that is not a positive integer', () => {
    expect(() => loadOnnxRuntimeKernels({ threads: 0 })).toThrow(
      'native kernel threads must be a positive integer, got 0.',
    );
    expect(() => loadOnnxRuntimeKernels({ threads: 2, onnxRuntimeThreads: 1.5 })).toThrow(
      'onnxRuntimeThreads must be a positive integer, got 1.5.',
    );
  });

  it("names ONNX Runtime's own thread count where it differs from the rest", () => {
    const apart = loadOnnxRuntimeKernels({ threads: 2, onnxRuntimeThreads: 1, matmul: 'onnxruntime' });
    expect(apart?.detail).toMatch(/, 2 threads \(ONNX Runtime's sessions 1\)$/);
    // The session pool's size changes what runs, so the registration tag (the detail) differs; the
    // product runs on an ONNX Runtime session of one thread.
    expect(apart?.detail).not.toBe(loadOnnxRuntimeKernels({ threads: 2, matmul: 'onnxruntime' })?.detail);
    const product = new Float32Array(4);
    apart?.matMul(
      new Float32Array([1, 2, 3, 4]),
      [2, 2],
      new Float32Array([1, 0, 0, 1]),
      [2, 2],
      product,
      [2, 2],
      false,
      false,
    );
    expect(Array.from(product)).toEqual([1, 2, 3, 4]);
  });

  it('names the input of an optimiser update whose size differs', () => {
    registerWasmTrainingKernels();
    const [p, g, m] = [tf.zeros([2, 3]), tf.zeros([5]), tf.zeros([2, 3])];
    const attrs = {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0,
      correction1: 0.1,
      correction2: 0.001,
    };
    expect(() => tf.engine().runKernel('MrlAdamWUpdate', { param: p, grad: g, m, v: m }, attrs)).toThrow(
      "MrlAdamWUpdate: input 'grad' has shape [5], expected 6 values like 'param'.",
    );
    tf.dispose([p, g, m]);
  });
});

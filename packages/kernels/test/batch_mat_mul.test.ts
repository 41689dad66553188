import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { expectClose, expectKernelMatchesCpu, onBackend, randomArray, randomHost } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** Shapes of a and b for C[m, n] = op(A) op(B) with a batch prefix. */
function operands(batchA: number[], batchB: number[], m: number, k: number, n: number, tA: boolean, tB: boolean) {
  return {
    a: [...batchA, ...(tA ? [k, m] : [m, k])],
    b: [...batchB, ...(tB ? [n, k] : [k, n])],
  };
}

const FLAGS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

describe.each(NATIVE_OPTIONS)('BatchMatMul on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  const shapes = [
    { name: '2-D 7x5x3', batchA: [], batchB: [], m: 7, k: 5, n: 3 },
    { name: '2-D 64x33x17', batchA: [], batchB: [], m: 64, k: 33, n: 17 },
    { name: 'batched 3x9x4x6', batchA: [3], batchB: [3], m: 9, k: 4, n: 6 },
    { name: 'broadcast batch 1 vs 2x3', batchA: [1, 1], batchB: [2, 3], m: 5, k: 8, n: 2 },
    // Per-entry GEMM path (batch > 1 on both sides), attention-like [B, H, T, dh] shapes.
    { name: 'attention-like 2x3x17x8 by 2x3x8x17', batchA: [2, 3], batchB: [2, 3], m: 17, k: 8, n: 17 },
    // Shared-b path: a [batch*M, K] view, one GEMM.
    { name: 'shared b, batch 4 vs 1', batchA: [4], batchB: [1], m: 6, k: 9, n: 5 },
  ];
  for (const s of shapes) {
    for (const [tA, tB] of FLAGS) {
      it(`${s.name}, transposeA=${tA}, transposeB=${tB}, matches cpu`, async () => {
        const { a, b } = operands(s.batchA, s.batchB, s.m, s.k, s.n, tA, tB);
        await expectKernelMatchesCpu(
          'BatchMatMul',
          { a: randomHost(a, 1), b: randomHost(b, 2) },
          { transposeA: tA, transposeB: tB },
        );
      });
    }
  }

  it('_FusedMatMul with bias, relu and transposes matches cpu', async () => {
    for (const [tA, tB] of FLAGS) {
      const { a, b } = operands([1], [1], 12, 10, 7, tA, tB);
      await expectKernelMatchesCpu(
        '_FusedMatMul',
        { a: randomHost(a, 3), b: randomHost(b, 4), bias: randomHost([7], 5) },
        { transposeA: tA, transposeB: tB, activation: 'relu', leakyreluAlpha: 0 },
      );
    }
  });

  it('gradients of a matmul loss equal the cpu ones', async () => {
    const aVals = randomArray(6 * 11, 6);
    const bVals = randomArray(11 * 4, 7);
    const grads = () => {
      const a = tf.tensor2d(aVals, [6, 11]);
      const b = tf.tensor2d(bVals, [11, 4]);
      // Both gradients use transposed products: dA = dC B^T, dB = A^T dC.
      const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y).square().sum();
      const [ga, gb] = tf.grads(f)([a, b]);
      const out = [ga!.dataSync().slice(), gb!.dataSync().slice()];
      tf.dispose([a, b, ga!, gb!]);
      return out;
    };
    const cpu = await onBackend('cpu', grads);
    const wasm = await onBackend('wasm', grads);
    expectClose(wasm[0]!, cpu[0]!);
    expectClose(wasm[1]!, cpu[1]!);
  });

  it('_FusedMatMul with every fusable activation, with and without bias, matches cpu', async () => {
    const activations = ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const;
    for (const activation of activations) {
      for (const withBias of [false, true]) {
        const { a, b } = operands([1], [1], 9, 6, 5, false, true);
        await expectKernelMatchesCpu(
          '_FusedMatMul',
          {
            a: randomHost(a, 8),
            b: randomHost(b, 9),
            ...(withBias ? { bias: randomHost([5], 10) } : {}),
            ...(activation === 'prelu' ? { preluActivationWeights: randomHost([5], 11) } : {}),
          },
          { transposeA: false, transposeB: true, activation, leakyreluAlpha: 0.15 },
        );
      }
    }
  });

  it('an empty reduction gives zeros and an empty output gives no values', async () => {
    await tf.setBackend('wasm');
    const zeros = tf.matMul(tf.zeros([5, 0]), tf.zeros([0, 3]));
    expect(zeros.shape).toEqual([5, 3]);
    expect(Array.from(await zeros.data())).toEqual(new Array(15).fill(0));
    const empty = tf.matMul(tf.zeros([0, 4]), tf.ones([4, 3]));
    expect(empty.shape).toEqual([0, 3]);
    tf.dispose([zeros, empty]);
  });

  it('names both shapes when the inner dims differ', async () => {
    await tf.setBackend('wasm');
    const a = tf.ones([2, 3, 4]);
    const b = tf.ones([2, 5, 6]);
    expect(() => tf.engine().runKernel('BatchMatMul', { a, b }, { transposeA: false, transposeB: false })).toThrow(
      /\[2, 3, 4\].*\[2, 5, 6\]/,
    );
    tf.dispose([a, b]);
  });

  it('is registered as ours after registerWasmTrainingKernels()', async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels(options); // second call: a no-op
    const kernel = tf.getKernel('BatchMatMul', 'wasm');
    expect((kernel?.kernelFunc as unknown as Record<symbol, unknown>)[Symbol.for('mrl/wasmTrainingKernel')]).toBe(true);
  });
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ADD_RELU, registerWasmTrainingKernels } from '@mrl/kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import { addRelu } from '../src/ops/add-relu.js';
import { onBackend, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** Value and gradients of sum(f(a, b) * w): a residual block's output feeding the rest. */
function valueAndGrads(aShape: number[], bShape: number[], f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor) {
  return tf.tidy(() => {
    const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
    const a = tf.tensor(randomArray(size(aShape), 1), aShape);
    const b = tf.tensor(randomArray(size(bShape), 2), bShape);
    const w = tf.tensor(randomArray(size(aShape), 3), aShape);
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), w)))([a, b]);
    return [value.dataSync().slice(), ...grads.map((g) => g.dataSync().slice())];
  });
}

const separate = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.relu(tf.add(a, b));

describe('addRelu', () => {
  for (const [aShape, bShape, what] of [
    [[2, 4, 4, 8], [2, 4, 4, 8], 'the fused kernels on wasm'],
    [[3, 5, 6], [3, 5, 6], 'Add and Relu (last axis not a multiple of 4)'],
    [[2, 4, 8], [8], 'Add and Relu (b broadcast)'],
  ] as const) {
    it(`[${aShape.join(', ')}] + [${bShape.join(', ')}] (${what}): value and both gradients equal relu(a + b)'s to the bit (a zero's sign aside)`, async () => {
      for (const backend of ['cpu', 'wasm'] as const) {
        const got = await onBackend(backend, () => valueAndGrads([...aShape], [...bShape], addRelu));
        const want = await onBackend(backend, () => valueAndGrads([...aShape], [...bShape], separate));
        // ReLU's gradient in TF.js is dy * step(x): -0 where dy < 0 and x <= 0; the mask gives +0.
        const plus = (xs: Float32Array[]) => xs.map((x) => Array.from(x, (v) => v + 0));
        expect(plus(got)).toEqual(plus(want));
      }
    });
  }

  it('runs the fused kernel on wasm for a matching float32 pair, and keeps tensors flat', async () => {
    await tf.setBackend('wasm');
    expect(tf.getKernel(ADD_RELU, 'wasm')).toBeDefined();
    const before = tf.memory().numTensors;
    const a = tf.tensor4d(randomArray(64, 4), [1, 4, 4, 4]);
    const b = tf.tensor4d(randomArray(64, 5), [1, 4, 4, 4]);
    const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => tf.sum(addRelu(x, y)))([a, b]);
    expect(Array.from(grads[0]!.dataSync())).toEqual(Array.from(grads[1]!.dataSync()));
    expect(grads[0]!.dataSync().some((v) => v === 0)).toBe(true);
    tf.dispose([a, b, value, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

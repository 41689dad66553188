// multiHeadAttention: the fused kernels (wasm on the oneDNN addon) against the TF.js ops it
// replaces, value and input gradient, on ViT-tiny's shape and odd ones; central finite
// differences on a small case; the TF.js ops where the kernels are absent; tensors freed.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ATTENTION, registerWasmTrainingKernels } from '@mrl/kernels';
import { loadOnnxRuntimeKernels } from '@mrl/kernels/native';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MrlError } from '../src/errors.js';
import { multiHeadAttention, multiHeadAttentionOps } from '../src/ops/attention.js';
import { expectClose, randomArray } from './helpers/close.js';

const native = loadOnnxRuntimeKernels({ threads: 2 });
const fusedHere = native?.batchNorm !== undefined;

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels(native === undefined ? {} : { native });
});
afterAll(() => registerWasmTrainingKernels());

/** Value and input gradient of sum(f(qkv) * w), with BERT's key mask and attention dropout when `masked`. */
function valueAndGrad(shape: [number, number, number], heads: number, f: typeof multiHeadAttention, masked = false) {
  return tf.tidy(() => {
    const [bb, tt] = shape;
    const options = masked
      ? {
          // Padding on the last two keys of the second row; dropout at rate 0.1 (as tf.dropout draws it).
          keyBias: tf.tensor2d(
            Array.from({ length: bb * tt }, (_, i) => (Math.floor(i / tt) === 1 && i % tt >= tt - 2 ? -1e9 : 0)),
            [bb, tt],
          ),
          dropout: tf.div(
            tf.floor(tf.add(tf.randomUniform([bb, heads, tt, tt], 0, 1, 'float32', 5), 0.9)),
            0.9,
          ) as tf.Tensor4D,
        }
      : {};
    const [b, t, w3] = shape;
    const qkv = tf.tensor3d(
      randomArray(b * t * w3, b + t + w3).map((v) => v * 1.5),
      shape,
    );
    const w = tf.tensor3d(randomArray((b * t * w3) / 3, 5 + t), [b, t, w3 / 3]);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, heads, options), w)))(
      qkv,
    );
    const out = f(qkv, heads, options);
    return { out: out.dataSync().slice(), value: value.dataSync()[0]!, grad: grad.dataSync().slice() };
  });
}

describe('multiHeadAttention', () => {
  it('runs the fused kernels on wasm where the addon is built', () => {
    expect(tf.getKernel(ATTENTION, 'wasm') !== undefined).toBe(fusedHere);
  });

  for (const [what, shape, heads, masked] of [
    ["ViT-tiny's [16, 65, 576], 3 heads", [16, 65, 576], 3, false],
    ['T 13, dh 8, 2 heads', [2, 13, 48], 2, false],
    ['one head, T 7, dh 8', [3, 7, 24], 1, false],
    ['BERT-like T 37, 4 heads of 16, a key mask and dropout', [3, 37, 192], 4, true],
  ] as const) {
    it(`${what}: value and d(qkv) as the TF.js ops (1e-5)`, () => {
      const got = valueAndGrad([...shape], heads, multiHeadAttention, masked);
      const want = valueAndGrad([...shape], heads, multiHeadAttentionOps, masked);
      expectClose(got.out, want.out, 1e-5);
      expectClose([got.value], [want.value], 1e-5);
      expectClose(got.grad, want.grad, 1e-5);
    });
  }

  it('d(qkv) matches central finite differences (b 2, T 3, 2 heads of 2)', () => {
    const shape: [number, number, number] = [2, 3, 12];
    const base = randomArray(72, 41);
    const w = tf.tensor3d(randomArray(24, 42), [2, 3, 4]);
    const f = (x: Float32Array): number =>
      tf.tidy(() => tf.sum(tf.mul(multiHeadAttention(tf.tensor3d(x, shape), 2), w)).dataSync()[0]!);
    const analytic = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.sum(tf.mul(multiHeadAttention(x as tf.Tensor3D, 2), w)))(tf.tensor3d(base, shape))
        .dataSync()
        .slice(),
    );
    const eps = 1e-2;
    for (let i = 0; i < base.length; i++) {
      const moved = (delta: number) => {
        const x = Float32Array.from(base);
        x[i]! += delta;
        return f(x);
      };
      const numeric = (moved(eps) - moved(-eps)) / (2 * eps);
      expect(
        Math.abs(numeric - analytic[i]!),
        `d(qkv)[${i}]: analytic ${analytic[i]}, numeric ${numeric}`,
      ).toBeLessThan(2e-3 * Math.max(1, Math.abs(analytic[i]!)));
    }
    expect(analytic.some((g) => Math.abs(g) > 1e-2)).toBe(true);
    w.dispose();
  });

  it('is the TF.js ops on a backend without the kernels (cpu), to the bit', async () => {
    await tf.setBackend('cpu');
    try {
      const got = valueAndGrad([2, 5, 24], 2, multiHeadAttention);
      const want = valueAndGrad([2, 5, 24], 2, multiHeadAttentionOps);
      expect(got).toEqual(want);
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it('keeps the tensor count flat through forward and backward', () => {
    const qkv = tf.tensor3d(randomArray(2 * 5 * 24, 3), [2, 5, 24]);
    const before = tf.memory().numTensors;
    const grad = tf.grad((x: tf.Tensor) => tf.sum(multiHeadAttention(x as tf.Tensor3D, 2)))(qkv);
    grad.dispose();
    expect(tf.memory().numTensors).toBe(before);
    qkv.dispose();
  });

  it('refuses a qkv width that is not 3 x heads x a head width, naming both', () => {
    const qkv = tf.zeros([1, 2, 20]) as tf.Tensor3D;
    expect(() => multiHeadAttention(qkv, 3)).toThrow(
      'multiHeadAttention: qkv [1, 2, 20] has a last axis of 20, which is not 3 x heads (3) x a positive head width.',
    );
    expect(() => multiHeadAttention(qkv, 3)).toThrow(MrlError);
    qkv.dispose();
  });
});

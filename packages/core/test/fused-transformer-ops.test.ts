import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { GELU, GELU_GRAD, LAYER_NORM, LAYER_NORM_GRAD, registerWasmTrainingKernels } from '@mrl/kernels';
import { gelu, geluTensorOps } from '../src/ops/gelu.js';
import { layerNorm, layerNormTensorOps } from '../src/ops/normalize.js';
import { expectClose, randomArray } from './helpers/close.js';
import { centralDifferences, layerNormLoss } from './helpers/float64.js';

// The wasm backend's fused GELU and layer norm kernels (packages/kernels/src/wasm/transformer_ops.ts)
// against the tensor-op forms they replace, and their gradients against central differences.

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** Value of sum(op(inputs) * w) and its gradients, w fixed so that every output counts differently. */
function valueAndGrads(op: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], seed: number): Float32Array[] {
  return tf.tidy(() => {
    const shape = tf.tidy(() => op(...inputs).shape);
    const w = tf.tensor(
      randomArray(
        shape.reduce((a, b) => a * b, 1),
        seed,
      ),
      shape,
    );
    const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op(...xs), w)))(inputs);
    return [value.dataSync().slice() as Float32Array, ...grads.map((g) => g.dataSync().slice() as Float32Array)];
  });
}

/** Names of the kernels one call of `f` runs (to prove which path ran). */
async function kernelsOf(f: () => void): Promise<string[]> {
  const info = await tf.profile(f);
  return info.kernels.map((k) => k.name);
}

describe('fused GELU (MrlGelu, MrlGeluGrad)', () => {
  for (const n of [1, 3, 4, 7, 4096 + 3]) {
    it(`equals the tensor-op GELU and its gradient to 1e-5, ${n} values`, () => {
      // Wide values, the ends included: far left 0 (not NaN), far right x.
      const xs = Float32Array.from(randomArray(n, n), (v, i) => [-100, 100, -12, 9][i] ?? 6 * v);
      const x = tf.tensor1d(xs);
      const fused = valueAndGrads((t) => gelu(t), [x], 21);
      const ops = valueAndGrads((t) => geluTensorOps(t), [x], 21);
      fused.forEach((values, i) => expectClose(values, ops[i]!, 1e-5));
      const y = tf.tidy(() => gelu(x).dataSync().slice());
      expect(y.every(Number.isFinite)).toBe(true);
      if (n > 1) {
        expect(y[0]).toBeCloseTo(0, 6);
        expect(y[1]).toBeCloseTo(100, 4);
      }
      x.dispose();
    });
  }

  it('runs as one kernel each way on wasm, and leaves no tensors behind', async () => {
    const x = tf.tensor2d(randomArray(64, 3), [8, 8]);
    const before = tf.memory().numTensors;
    const names = await kernelsOf(() => {
      tf.tidy(() => {
        tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x);
      });
    });
    expect(names).toContain(GELU);
    expect(names).toContain(GELU_GRAD);
    expect(names).not.toContain('Sigmoid');
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('its gradient matches central differences of the float64 tanh form', () => {
    const f64 = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    const xs = Array.from(randomArray(37, 5), (v) => 4 * v);
    const h = 1e-6;
    const numeric = xs.map((x) => (f64(x + h) - f64(x - h)) / (2 * h));
    const analytic = tf.tidy(() =>
      tf
        .grad((t: tf.Tensor) => tf.sum(gelu(t)))(tf.tensor1d(xs))
        .dataSync()
        .slice(),
    );
    expectClose(analytic, numeric, 1e-5);
  });
});

describe('fused layer norm (MrlLayerNorm, MrlLayerNormGrad)', () => {
  for (const shape of [
    [3, 8],
    [2, 5, 12],
    [16, 65, 192],
  ]) {
    it(`equals the tensor-op layer norm and its gradients (x, gamma, beta) to 1e-5, [${shape.join(', ')}]`, () => {
      const size = shape.reduce((a, b) => a * b, 1);
      const c = shape[shape.length - 1]!;
      const x = tf.tensor(
        randomArray(size, 1).map((v, i) => 3 * v + (i % 5)),
        shape,
      );
      const gamma = tf.tensor1d(randomArray(c, 2).map((v) => 1 + v));
      const beta = tf.tensor1d(randomArray(c, 3));
      const op = (f: typeof layerNorm) => (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        f(xx, g as tf.Tensor1D, b as tf.Tensor1D, 1e-6);
      const fused = valueAndGrads(op(layerNorm), [x, gamma, beta], 4);
      const ops = valueAndGrads(op(layerNormTensorOps), [x, gamma, beta], 4);
      fused.forEach((values, i) => expectClose(values, ops[i]!, 1e-5));
      tf.dispose([x, gamma, beta]);
    });
  }

  it('runs as one kernel each way on wasm, and leaves no tensors behind', async () => {
    const x = tf.tensor2d(randomArray(32, 3), [4, 8]);
    const g = tf.ones([8]) as tf.Tensor1D;
    const b = tf.zeros([8]) as tf.Tensor1D;
    const before = tf.memory().numTensors;
    const names = await kernelsOf(() => {
      tf.tidy(() => {
        tf.grads((t: tf.Tensor, gg: tf.Tensor) => tf.sum(layerNorm(t, gg as tf.Tensor1D, b, 1e-6)))([x, g]);
      });
    });
    expect(names).toContain(LAYER_NORM);
    expect(names).toContain(LAYER_NORM_GRAD);
    expect(names).not.toContain('Mean');
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b]);
  });

  it('widths that are not a multiple of 4 take the tensor-op form', async () => {
    const x = tf.tensor2d(randomArray(15, 3), [3, 5]);
    const names = await kernelsOf(() => {
      tf.tidy(() => layerNorm(x, tf.ones([5]) as tf.Tensor1D, tf.zeros([5]) as tf.Tensor1D, 1e-6));
    });
    expect(names).not.toContain(LAYER_NORM);
    x.dispose();
  });

  it('its gradients match central differences in float64', () => {
    const rows = 3;
    const width = 8;
    const xs = Array.from(randomArray(rows * width, 5), (v) => 2 * v);
    const gs = Array.from(randomArray(width, 6), (v) => 1 + v);
    const bs = Array.from(randomArray(width, 7));
    const ws = Array.from(randomArray(rows * width, 8));
    const eps = 1e-6;
    // sum(layerNorm(x) * w) in float64, of all three inputs laid end to end.
    const all = [...xs, ...gs, ...bs];
    const numeric = centralDifferences(all, (v) =>
      layerNormLoss(
        v.slice(0, rows * width),
        v.slice(rows * width, rows * width + width),
        v.slice(rows * width + width),
        ws,
        width,
        eps,
      ),
    );
    const analytic = tf.tidy(() => {
      const w = tf.tensor2d(ws, [rows, width]);
      const grads = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, eps), w)),
      )([tf.tensor2d(xs, [rows, width]), tf.tensor1d(gs), tf.tensor1d(bs)]);
      return grads.flatMap((t) => Array.from(t.dataSync()));
    });
    expectClose(analytic, numeric, 1e-4);
    expect(Math.max(...numeric.map(Math.abs))).toBeGreaterThan(0.01);
  });
});

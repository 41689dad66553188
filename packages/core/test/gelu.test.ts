import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '../src/kernels/index.js';
import { gelu } from '../src/ops/gelu.js';
import { expectClose, onBackend, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** The tanh form and its derivative in float64, from the definition. */
function reference(x: number): { value: number; slope: number } {
  const c = Math.sqrt(2 / Math.PI);
  const u = c * (x + 0.044715 * x ** 3);
  const t = Math.tanh(u);
  return { value: 0.5 * x * (1 + t), slope: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x) };
}

describe('gelu', () => {
  const xs = randomArray(64, 11).map((v, i) => (i < 4 ? [-12, -3, 0, 9][i]! : 5 * v));

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`equals the tanh form and its derivative on ${backend}`, async () => {
      const [values, slopes] = await onBackend(backend, () =>
        tf.tidy(() => {
          const x = tf.tensor1d(xs);
          const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => tf.sum(gelu(t)))([x]);
          value.dispose();
          return [gelu(x).dataSync(), grads[0]!.dataSync()] as const;
        }),
      );
      expectClose(
        values,
        Array.from(xs, (x) => reference(x).value),
        1e-5,
      );
      expectClose(
        slopes,
        Array.from(xs, (x) => reference(x).slope),
        1e-5,
      );
      expect(values[0]).toBeCloseTo(0, 6); // far left: 0, not NaN
      expect(values[3]).toBeCloseTo(9, 5); // far right: x
    });
  }
});

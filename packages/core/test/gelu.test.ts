import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '@mrl/kernels';
import { gelu, geluErf } from '../src/ops/gelu.js';
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

/** erf in float64 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): an independent reference. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return Math.sign(x) * (1 - poly * Math.exp(-x * x));
}

describe('geluErf', () => {
  const xs = randomArray(64, 12).map((v, i) => (i < 4 ? [-12, -3, 0, 9][i]! : 5 * v));

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`equals x Phi(x) and its derivative Phi(x) + x phi(x) on ${backend}`, async () => {
      const [values, slopes] = await onBackend(backend, () =>
        tf.tidy(() => {
          const x = tf.tensor1d(xs);
          const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => tf.sum(geluErf(t)))([x]);
          value.dispose();
          return [geluErf(x).dataSync(), grads[0]!.dataSync()] as const;
        }),
      );
      const cdf = (x: number): number => 0.5 * (1 + erf(x / Math.SQRT2));
      const pdf = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
      expectClose(
        values,
        Array.from(xs, (x) => x * cdf(x)),
        1e-5,
      );
      expectClose(
        slopes,
        Array.from(xs, (x) => cdf(x) + x * pdf(x)),
        1e-5,
      );
    });
  }

  it('differs from the tanh form by more than the 1e-4 an imported model must match', () => {
    const gap = tf.tidy(() => {
      const x = tf.linspace(-4, 4, 801);
      return tf.max(tf.abs(tf.sub(geluErf(x), gelu(x)))).dataSync()[0]!;
    });
    expect(gap).toBeGreaterThan(1e-4);
  });
});

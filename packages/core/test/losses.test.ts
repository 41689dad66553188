import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, SOFTMAX_CROSS_ENTROPY } from '@mrl/kernels';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { softmaxCrossEntropy } from '../src/losses.js';
import { expectClose, onBackend, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
  await tf.setBackend('cpu');
});

/** Loss and d loss / d logits in float64, written out from the definition. */
function reference(logits: Float32Array, labels: Int32Array, classes: number): { loss: number; grad: Float64Array } {
  const rows = labels.length;
  const grad = new Float64Array(rows * classes);
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
    const max = Math.max(...row);
    const total = row.reduce((a, v) => a + Math.exp(v - max), 0);
    loss += (Math.log(total) + max - row[labels[i]!]!) / rows;
    row.forEach((v, c) => {
      grad[i * classes + c] = (Math.exp(v - max) / total - (c === labels[i] ? 1 : 0)) / rows;
    });
  }
  return { loss, grad };
}

describe('softmaxCrossEntropy', () => {
  const rows = 7;
  const classes = 11;
  // Large offsets: a naive exp would overflow in float32.
  const logits = randomArray(rows * classes, 3).map((v, i) => 8 * v + (i % classes === 0 ? 90 : 0));
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 5) % classes);

  const settings = [
    ['cpu', 'cpu', {}] as const,
    ...NATIVE_OPTIONS.map(([name, options]) => [`wasm (kernels: ${name})`, 'wasm', options] as const),
  ];
  for (const [label, backend, options] of settings) {
    it(`matches a float64 computation, value and gradient, on ${label}`, async () => {
      await tf.setBackend('wasm');
      registerWasmTrainingKernels(options);
      // Native kernels bring the fused op; without them the loss is tensor ops.
      expect(tf.getKernel(SOFTMAX_CROSS_ENTROPY, 'wasm') !== undefined).toBe('native' in options);
      const { loss, grad } = reference(logits, labels, classes);
      const [value, gradient] = await onBackend(backend, () =>
        tf.tidy(() => {
          const x = tf.tensor2d(logits, [rows, classes]);
          const y = tf.tensor1d(labels, 'int32');
          const { value: v, grads } = tf.valueAndGrads((t: tf.Tensor) =>
            tf.mul(softmaxCrossEntropy(t as tf.Tensor2D, y), 3),
          )([x]);
          return [v.dataSync()[0]!, grads[0]!.dataSync()] as const;
        }),
      );
      expect(Math.abs(value - 3 * loss)).toBeLessThan(1e-4);
      expectClose(
        gradient,
        grad.map((g) => 3 * g),
        1e-6,
      );
    });
  }

  it('on native kernels: a vocabulary-sized row matches float64, and a label out of range is named', async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels(NATIVE_OPTIONS[1]![1]);
    const wide = 30522;
    const big = randomArray(3 * wide, 5).map((v) => 4 * v);
    const ids = Int32Array.of(0, 17_000, wide - 1);
    const { loss, grad } = reference(big, ids, wide);
    const before = tf.memory().numTensors;
    const [value, gradient] = tf.tidy(() => {
      const { value: v, grads } = tf.valueAndGrads((t: tf.Tensor) =>
        softmaxCrossEntropy(t as tf.Tensor2D, tf.tensor1d(ids, 'int32')),
      )([tf.tensor2d(big, [3, wide])]);
      return [v.dataSync()[0]!, grads[0]!.dataSync()] as const;
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.abs(value - loss)).toBeLessThan(1e-5);
    expectClose(gradient, grad, 1e-5);
    expect(() =>
      tf.tidy(() =>
        softmaxCrossEntropy(tf.tensor2d(big.subarray(0, 2 * wide), [2, wide]), tf.tensor1d([3, wide], 'int32')),
      ),
    ).toThrow(`softmaxCrossEntropy: label ${wide} of row 1 is outside [0, ${wide}).`);
  });

  it('takes float labels and leaves no tensors behind after a gradient', async () => {
    await tf.setBackend('cpu');
    const before = tf.memory().numTensors;
    const x = tf.tensor2d(logits, [rows, classes]);
    const y = tf.tensor1d(Array.from(labels), 'float32');
    const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => softmaxCrossEntropy(t as tf.Tensor2D, y))([x]);
    expect(Math.abs(value.dataSync()[0]! - reference(logits, labels, classes).loss)).toBeLessThan(1e-5);
    tf.dispose([value, ...grads]);
    expect(tf.memory().numTensors).toBe(before + 2);
    softmaxCrossEntropy(x, y).dispose(); // forward only, no tape: the saved tensors must go too
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

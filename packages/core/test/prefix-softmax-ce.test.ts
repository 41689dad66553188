import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { PREFIX_SOFTMAX_CE, registerWasmTrainingKernels } from '@mrl/kernels';
import { prefixSoftmaxCrossEntropy } from '../src/ops/prefix-softmax-ce.js';
import { expectClose, onBackend, randomArray } from './helpers/close.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

interface Case {
  name: string;
  rows: number;
  width: number;
  classes: number;
  dims: number[];
  layout: 'embedding-first' | 'classes-first';
  bias: boolean;
}

const CASES: Case[] = [
  {
    name: 'embedding-first with bias, dims up to d',
    rows: 9,
    width: 16,
    classes: 7,
    dims: [2, 4, 8, 16],
    layout: 'embedding-first',
    bias: true,
  },
  {
    name: 'embedding-first without bias, dims short of d',
    rows: 5,
    width: 12,
    classes: 11,
    dims: [3, 8],
    layout: 'embedding-first',
    bias: false,
  },
  {
    name: 'classes-first (tied table) with bias, dims short of d',
    rows: 6,
    width: 10,
    classes: 13,
    dims: [2, 5, 9],
    layout: 'classes-first',
    bias: true,
  },
  {
    name: 'classes-first, one dim equal to d',
    rows: 4,
    width: 8,
    classes: 5,
    dims: [8],
    layout: 'classes-first',
    bias: false,
  },
];

/** Losses (each weighted by its index + 1, so every dim's gradient differs) and the gradients. */
function lossAndGrads(c: Case) {
  return tf.tidy(() => {
    const z = tf.tensor2d(randomArray(c.rows * c.width, 1), [c.rows, c.width]);
    const w = tf.tensor2d(
      randomArray(c.width * c.classes, 2),
      c.layout === 'classes-first' ? [c.classes, c.width] : [c.width, c.classes],
    );
    const b = tf.tensor1d(randomArray(c.classes, 3));
    const labels = tf.tensor1d(
      Int32Array.from({ length: c.rows }, (_, i) => (i * 3 + 1) % c.classes),
      'int32',
    );
    const weights = tf.tensor1d(c.dims.map((_, j) => j + 1));
    const f = (...xs: tf.Tensor[]) =>
      tf.sum(
        tf.mul(
          prefixSoftmaxCrossEntropy(
            xs[0] as tf.Tensor2D,
            xs[1] as tf.Tensor2D,
            c.bias ? (xs[2] as tf.Tensor1D) : null,
            labels,
            c.dims,
            c.layout,
          ),
          weights,
        ),
      );
    const losses = prefixSoftmaxCrossEntropy(z, w, c.bias ? b : null, labels, c.dims, c.layout);
    const { grads } = tf.valueAndGrads(f)(c.bias ? [z, w, b] : [z, w]);
    return {
      losses: losses.dataSync().slice(),
      dz: grads[0]!.dataSync().slice(),
      dw: grads[1]!.dataSync().slice(),
      db: c.bias ? grads[2]!.dataSync().slice() : null,
    };
  });
}

describe.each(NATIVE_OPTIONS)(
  'prefixSoftmaxCrossEntropy on wasm (kernels: %s) equals the tensor-op form on cpu',
  (name, options) => {
    beforeAll(async () => {
      await tf.setBackend('wasm');
      registerWasmTrainingKernels(options);
      expect(tf.getKernel(PREFIX_SOFTMAX_CE, 'wasm') !== undefined).toBe(name === 'onnxruntime');
    });

    for (const c of CASES) {
      it(`${c.name}: losses and gradients`, async () => {
        const cpu = await onBackend('cpu', () => lossAndGrads(c));
        const before = await onBackend('wasm', () => tf.memory().numTensors);
        const wasm = await onBackend('wasm', () => lossAndGrads(c));
        expect(await onBackend('wasm', () => tf.memory().numTensors)).toBe(before);
        expect(wasm.losses.length).toBe(c.dims.length);
        expectClose(wasm.losses, cpu.losses, 1e-5);
        expectClose(wasm.dz, cpu.dz, 1e-4);
        expectClose(wasm.dw, cpu.dw, 1e-4);
        if (c.bias) {
          expectClose(wasm.db!, cpu.db!, 1e-4);
          expect(Math.max(...Array.from(wasm.db!).map(Math.abs))).toBeGreaterThan(0);
        }
        // Columns past the largest dim get no gradient.
        const last = c.dims[c.dims.length - 1]!;
        if (last < c.width)
          expect(
            Math.max(
              ...Array.from(wasm.dz)
                .filter((_, i) => i % c.width >= last)
                .map(Math.abs),
            ),
          ).toBe(0);
      });
    }
  },
);

describe('prefixSoftmaxCrossEntropy on native kernels', () => {
  it('names a label outside the classes', async () => {
    await tf.setBackend('wasm');
    registerWasmTrainingKernels(NATIVE_OPTIONS[1]![1]);
    expect(() =>
      tf.tidy(() =>
        prefixSoftmaxCrossEntropy(tf.ones([2, 4]), tf.ones([4, 3]), null, tf.tensor1d([0, 3], 'int32'), [2, 4]),
      ),
    ).toThrow(/label 3 of row 1 is outside \[0, 3\)/);
  });
});

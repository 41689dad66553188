// End-to-end: gradients that go through our wasm kernels (conv backprops, transposed matmuls,
// tile from batch norm, segment sum from gather) equal the cpu backend's.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { expectClose, onBackend, randomArray } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

type Grads = { loss: number; grads: Float32Array[] };

/** Runs `step` (which builds variables and returns loss + grads) and checks nothing leaks. */
function leakFree(step: () => Grads): () => Grads {
  return () => {
    const tensorsBefore = tf.memory().numTensors;
    const dataBefore = tf.backend().numDataIds();
    const out = step();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.backend().numDataIds()).toBe(dataBefore);
    return out;
  };
}

/** A variable from host values; tidy frees the initial tensor (tidy never disposes variables). */
function variable<R extends tf.Rank>(values: Float32Array, shape: tf.ShapeMap[R], offset = 0): tf.Variable<R> {
  return tf.tidy(() => tf.variable(tf.tensor(values, shape).add<tf.Tensor<R>>(offset)));
}

function gradsOf(f: () => tf.Scalar, vars: tf.Variable[]): Grads {
  const { value, grads } = tf.variableGrads(f, vars);
  const out = { loss: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync().slice() as Float32Array) };
  tf.dispose([value, ...Object.values(grads), ...vars]);
  return out;
}

async function expectSameGrads(step: () => Grads): Promise<void> {
  const cpu = await onBackend('cpu', leakFree(step));
  const wasm = await onBackend('wasm', leakFree(step));
  expectClose([wasm.loss], [cpu.loss]);
  expect(wasm.grads.length).toBe(cpu.grads.length);
  cpu.grads.forEach((g, i) => expectClose(wasm.grads[i]!, g));
}

describe.each(NATIVE_OPTIONS)('gradients on wasm with our kernels equal cpu (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  it('ResNet-ish conv net: conv s1 same, batch norm, relu, conv s2 valid, residual conv, dense', async () => {
    const x = randomArray(4 * 9 * 10 * 3, 51);
    const labels = Array.from({ length: 4 }, (_, i) => i % 5);
    await expectSameGrads(() => {
      const w1 = variable<tf.Rank.R4>(randomArray(3 * 3 * 3 * 8, 52), [3, 3, 3, 8]);
      const gamma = variable<tf.Rank.R1>(randomArray(8, 53), [8], 1.5);
      const beta = variable<tf.Rank.R1>(randomArray(8, 54), [8]);
      const w2 = variable<tf.Rank.R4>(randomArray(3 * 3 * 8 * 6, 55), [3, 3, 8, 6]);
      const w3 = variable<tf.Rank.R4>(randomArray(1 * 1 * 6 * 6, 56), [1, 1, 6, 6]);
      const wd = variable<tf.Rank.R2>(randomArray(6 * 5, 57), [6, 5]);
      const loss = () =>
        tf.tidy(() => {
          const input = tf.tensor4d(x, [4, 9, 10, 3]); // [B, H, W, C]
          let h: tf.Tensor4D = tf.conv2d(input, w1, 1, 'same'); // [4, 9, 10, 8]
          const { mean, variance } = tf.moments(h, [0, 1, 2]) as { mean: tf.Tensor1D; variance: tf.Tensor1D };
          h = tf.relu(tf.batchNorm<tf.Rank.R4>(h, mean, variance, beta, gamma, 1e-3));
          h = tf.relu(tf.conv2d(h, w2, 2, 'valid')); // [4, 4, 4, 6]
          h = tf.add<tf.Tensor4D>(h, tf.conv2d(h, w3, 1, 'same'));
          const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D; // [4, 6]
          return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 5), tf.matMul(pooled, wd)) as tf.Scalar;
        });
      return gradsOf(loss, [w1, gamma, beta, w2, w3, wd]);
    });
  });

  it('MobileNet-ish block: depthwise conv s2, pointwise conv, batch norm', async () => {
    const x = randomArray(3 * 8 * 8 * 4, 111);
    await expectSameGrads(() => {
      const dw = variable<tf.Rank.R4>(randomArray(3 * 3 * 4 * 2, 112), [3, 3, 4, 2]);
      const pw = variable<tf.Rank.R4>(randomArray(1 * 1 * 8 * 6, 113), [1, 1, 8, 6]);
      const dw2 = variable<tf.Rank.R4>(randomArray(3 * 3 * 6 * 1, 114), [3, 3, 6, 1]);
      const loss = () =>
        tf.tidy(() => {
          let h = tf.depthwiseConv2d(tf.tensor4d(x, [3, 8, 8, 4]), dw, 2, 'same'); // [3, 4, 4, 8]
          h = tf.relu(tf.conv2d(h, pw, 1, 'valid')); // [3, 4, 4, 6]
          const { mean, variance } = tf.moments(h, [0, 1, 2]) as { mean: tf.Tensor1D; variance: tf.Tensor1D };
          h = tf.batchNorm<tf.Rank.R4>(h, mean, variance, tf.zerosLike(mean), tf.onesLike(mean), 1e-3);
          h = tf.depthwiseConv2d(h, dw2, 1, 'same'); // [3, 4, 4, 6]
          return h.square().mean() as tf.Scalar;
        });
      return gradsOf(loss, [dw, pw, dw2]);
    });
  });

  it('tfjs-layers model (fused conv and dense, batchNormalization) gives the same weight gradients', async () => {
    const x = randomArray(3 * 8 * 8 * 2, 61);
    const y = randomArray(3 * 4, 62);
    await expectSameGrads(() => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({
            inputShape: [8, 8, 2],
            filters: 4,
            kernelSize: 3,
            strides: 2,
            padding: 'same',
            activation: 'relu',
          }),
          tf.layers.batchNormalization(),
          tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'valid' }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 4, activation: 'tanh' }),
        ],
      });
      const init = model.getWeights().map((w, i) => tf.tensor(randomArray(w.size, 70 + i), w.shape));
      model.setWeights(init);
      tf.dispose(init);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const out = model.apply(tf.tensor4d(x, [3, 8, 8, 2]), { training: true }) as tf.Tensor;
            return tf.losses.meanSquaredError(tf.tensor2d(y, [3, 4]), out) as tf.Scalar;
          }),
        vars,
      );
      const result = {
        loss: value.dataSync()[0]!,
        grads: vars.map((v) => grads[v.name]!.dataSync().slice() as Float32Array),
      };
      tf.dispose([value, ...Object.values(grads)]);
      model.dispose();
      return result;
    });
  });

  it('embedding lookup (gather with repeated 2-D ids) then a dense head', async () => {
    const ids = Int32Array.from({ length: 3 * 7 }, (_, i) => (i * 17) % 23);
    await expectSameGrads(() => {
      const table = variable<tf.Rank.R2>(randomArray(30 * 6, 81), [30, 6]);
      const w = variable<tf.Rank.R2>(randomArray(6 * 4, 82), [6, 4]);
      const loss = () =>
        tf.tidy(() => {
          const emb = tf.gather(table, tf.tensor2d(ids, [3, 7], 'int32')); // [3, 7, 6]
          const logits = tf.matMul(tf.mean(emb, 1) as tf.Tensor2D, w); // [3, 4]
          return tf.losses.softmaxCrossEntropy(tf.oneHot([0, 3, 1], 4), logits) as tf.Scalar;
        });
      return gradsOf(loss, [table, w]);
    });
  });

  it('two-layer MLP with transposed products in the backward pass', async () => {
    const x = randomArray(16 * 20, 91);
    await expectSameGrads(() => {
      const w1 = variable<tf.Rank.R2>(randomArray(20 * 12, 92), [20, 12]);
      const w2 = variable<tf.Rank.R2>(randomArray(12 * 3, 93), [12, 3]);
      const loss = () =>
        tf.tidy(() => {
          const h = tf.relu(tf.matMul(tf.tensor2d(x, [16, 20]), w1));
          return tf.matMul(h, w2).square().mean() as tf.Scalar;
        });
      return gradsOf(loss, [w1, w2]);
    });
  });
});

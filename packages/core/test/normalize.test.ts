import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  RUNNING_MOMENTS,
  registerWasmTrainingKernels,
} from '@mrl/kernels';
import { batchNormTraining, layerNorm, runningMoments } from '../src/ops/normalize.js';
import { expectClose, onBackend, randomArray } from './helpers/close.js';
import { centralDifferences, layerNormLoss } from './helpers/float64.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** The written-out form (autodiff through the moments): the reference for value and gradient. */
function written(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, axes: number[], eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, axes, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

/** Value and gradients of sum(op(x) * weights), weights fixed so every output counts differently. */
function valueAndGrads(shape: number[], op: (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor) {
  return tf.tidy(() => {
    const channels = shape[shape.length - 1]!;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor(
      randomArray(size, 1).map((v, i) => 3 * v + (i % 3)),
      shape,
    );
    const gamma = tf.tensor1d(randomArray(channels, 2).map((v) => 1 + v));
    const beta = tf.tensor1d(randomArray(channels, 3));
    const weights = tf.tensor(randomArray(size, 4), shape);
    const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(op(xx, g as tf.Tensor1D, b as tf.Tensor1D), weights));
    const { value, grads } = tf.valueAndGrads(f)([x, gamma, beta]);
    return [value.dataSync().slice(), ...grads.map((t) => t.dataSync().slice())];
  });
}

const SETTINGS = [
  [
    'layerNorm over the last axis of [5, 7, 12]',
    [5, 7, 12],
    [2],
    (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => layerNorm(x, g, b, 1e-6),
  ],
  [
    'batchNormTraining over N, H, W of [3, 4, 5, 6]',
    [3, 4, 5, 6],
    [0, 1, 2],
    (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => batchNormTraining(x as tf.Tensor4D, g, b, 1e-5),
  ],
  [
    'batchNormTraining over N, H, W of [3, 4, 5, 8] (wasm: the fused kernels)',
    [3, 4, 5, 8],
    [0, 1, 2],
    (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => batchNormTraining(x as tf.Tensor4D, g, b, 1e-5),
  ],
] as const;

/** Runs `f` on wasm with the fused batch-norm kernels unregistered: the tensor-op form. */
async function withoutFusedBatchNorm<T>(f: () => T): Promise<T> {
  await tf.setBackend('wasm');
  tf.unregisterKernel(BATCH_NORM_TRAINING, 'wasm');
  tf.unregisterKernel(BATCH_NORM_TRAINING_GRAD, 'wasm');
  try {
    return f();
  } finally {
    registerWasmTrainingKernels();
  }
}

describe('closed-form normalisation gradients', () => {
  for (const [label, shape, axes, op] of SETTINGS) {
    for (const backend of ['cpu', 'wasm'] as const) {
      it(`${label}: value and gradients equal autodiff of the written-out form, on ${backend}`, async () => {
        const eps = label.startsWith('layer') ? 1e-6 : 1e-5;
        const ours = await onBackend(backend, () => valueAndGrads([...shape], op));
        const reference = await onBackend('cpu', () =>
          valueAndGrads([...shape], (x, g, b) => written(x, g, b, [...axes], eps)),
        );
        ours.forEach((values, i) => expectClose(values, reference[i]!, 1e-4));
      });
    }
  }

  it('layerNorm: the x gradient matches central finite differences in float64', async () => {
    await tf.setBackend('cpu');
    const rows = 2;
    const width = 5;
    const xs = Array.from(randomArray(rows * width, 5)).map((v) => 2 * v);
    const gs = Array.from(randomArray(width, 6)).map((v) => 1 + v);
    const bs = Array.from(randomArray(width, 7));
    const ws = Array.from(randomArray(rows * width, 8));
    const eps = 1e-6;
    // The loss sum(layerNorm(x) * w) in float64.
    const numeric = centralDifferences(xs, (x) => layerNormLoss(x, gs, bs, ws, width, eps));
    const analytic = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) =>
          tf.sum(tf.mul(layerNorm(x, tf.tensor1d(gs), tf.tensor1d(bs), eps), tf.tensor2d(ws, [rows, width]))),
        )(tf.tensor2d(xs, [rows, width]))
        .dataSync()
        .slice(),
    );
    expectClose(analytic, numeric, 1e-3);
    expect(Math.max(...numeric.map(Math.abs))).toBeGreaterThan(0.01);
  });

  it('batchNormTraining hands the batch moments to onMoments, per channel', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor4d(randomArray(2 * 3 * 3 * 4, 9), [2, 3, 3, 4]);
    let seen: number[][] = [];
    tf.tidy(() =>
      batchNormTraining(x, tf.ones([4]), tf.zeros([4]), 1e-5, (mean, variance) => {
        seen = [Array.from(mean.dataSync()), Array.from(variance.dataSync())];
      }),
    );
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    expectClose(seen[0]!, mean.dataSync());
    expectClose(seen[1]!, variance.dataSync());
    tf.dispose([x, mean, variance]);
  });

  for (const shape of [
    [16, 8, 8, 64],
    [2, 33, 1, 4],
  ]) {
    it(`batchNormTraining [${shape.join(', ')}]: the fused kernels equal the tensor-op form to 1e-5`, async () => {
      const op = (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => batchNormTraining(x as tf.Tensor4D, g, b, 1e-5);
      expect(tf.getKernel(BATCH_NORM_TRAINING, 'wasm')).toBeDefined();
      const fused = await onBackend('wasm', () => valueAndGrads(shape, op));
      const tensorOps = await withoutFusedBatchNorm(() => valueAndGrads(shape, op));
      expect(tf.getKernel(BATCH_NORM_TRAINING, 'wasm')).toBeDefined();
      fused.forEach((values, i) => expectClose(values, tensorOps[i]!, 1e-5));
    });
  }

  it('batchNormTraining, fused on wasm: every gradient matches central finite differences in float64', async () => {
    const [n, h, w, c] = [2, 3, 2, 4];
    const rows = n * h * w;
    const xs = Array.from(randomArray(rows * c, 10)).map((v, i) => 2 * v + (i % 3));
    const gs = Array.from(randomArray(c, 11)).map((v) => 1 + v);
    const bs = Array.from(randomArray(c, 12));
    const ws = Array.from(randomArray(rows * c, 13));
    const eps = 1e-5;
    // The loss sum(batchNorm(x) * w) in float64, statistics over the rows of each channel.
    const loss = (x: number[], g: number[], b: number[]) => {
      let total = 0;
      for (let ch = 0; ch < c; ch++) {
        let mean = 0;
        for (let r = 0; r < rows; r++) mean += x[r * c + ch]! / rows;
        let variance = 0;
        for (let r = 0; r < rows; r++) variance += (x[r * c + ch]! - mean) ** 2 / rows;
        for (let r = 0; r < rows; r++)
          total += (((x[r * c + ch]! - mean) / Math.sqrt(variance + eps)) * g[ch]! + b[ch]!) * ws[r * c + ch]!;
      }
      return total;
    };
    const numeric = [
      centralDifferences(xs, (v) => loss(v, gs, bs)),
      centralDifferences(gs, (v) => loss(xs, v, bs)),
      centralDifferences(bs, (v) => loss(xs, gs, v)),
    ];
    await tf.setBackend('wasm');
    const analytic = tf.tidy(() =>
      tf
        .grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          tf.sum(
            tf.mul(
              batchNormTraining(x as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, eps),
              tf.tensor4d(ws, [n, h, w, c]),
            ),
          ),
        )([tf.tensor4d(xs, [n, h, w, c]), tf.tensor1d(gs), tf.tensor1d(bs)])
        .map((t) => t.dataSync().slice()),
    );
    analytic.forEach((values, i) => expectClose(values, numeric[i]!, 1e-3));
    expect(Math.max(...numeric[0]!.map(Math.abs))).toBeGreaterThan(0.01);
  });

  // With relu: tf.relu of the plain op, value and gradients, on cpu (tensor ops then tf.relu), on
  // wasm's fused kernels (ReLU inside them) and on wasm's tensor-op form.
  for (const shape of [
    [3, 4, 5, 6],
    [2, 5, 3, 8],
  ]) {
    it(`batchNormTraining [${shape.join(', ')}] with relu equals tf.relu of it, value and gradients`, async () => {
      const reluOp = (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) =>
        batchNormTraining(x as tf.Tensor4D, g, b, 1e-5, undefined, true);
      const separate = (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => tf.relu(written(x, g, b, [0, 1, 2], 1e-5));
      const reference = await onBackend('cpu', () => valueAndGrads(shape, separate));
      const results = [
        await onBackend('cpu', () => valueAndGrads(shape, reluOp)),
        await onBackend('wasm', () => valueAndGrads(shape, reluOp)),
        await withoutFusedBatchNorm(() => valueAndGrads(shape, reluOp)),
      ];
      for (const ours of results) ours.forEach((values, i) => expectClose(values, reference[i]!, 1e-4));
      // The ReLU cuts something: the gradient differs from the plain op's.
      const plain = await onBackend('cpu', () =>
        valueAndGrads(shape, (x, g, b) => batchNormTraining(x as tf.Tensor4D, g, b, 1e-5)),
      );
      expect(Math.abs(plain[0]![0]! - reference[0]![0]!)).toBeGreaterThan(1e-3);
    });
  }

  it('batchNormTraining, fused on wasm, hands the batch moments to onMoments', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(randomArray(2 * 3 * 3 * 8, 14), [2, 3, 3, 8]);
    let seen: number[][] = [];
    let shapes: number[][] = [];
    tf.tidy(() =>
      batchNormTraining(x, tf.ones([8]), tf.zeros([8]), 1e-5, (mean, variance) => {
        shapes = [mean.shape, variance.shape];
        seen = [Array.from(mean.dataSync()), Array.from(variance.dataSync())];
      }),
    );
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    expect(shapes).toEqual([
      [1, 1, 1, 8],
      [1, 1, 1, 8],
    ]);
    expectClose(seen[0]!, mean.dataSync(), 1e-5);
    expectClose(seen[1]!, variance.dataSync(), 1e-5);
    tf.dispose([x, mean, variance]);
  });
});

describe('runningMoments', () => {
  const run = (c: number, momentum: number, count: number): Float32Array[] =>
    tf.tidy(() =>
      runningMoments(
        tf.tensor1d(randomArray(c, 30)),
        tf.tensor1d(randomArray(c, 31).map((v) => 1 + v)),
        tf.tensor4d(randomArray(c, 32), [1, 1, 1, c]),
        tf.tensor4d(
          randomArray(c, 33).map((v) => 2 + v),
          [1, 1, 1, c],
        ),
        momentum,
        count,
      ).map((t) => t.dataSync() as Float32Array),
    );

  for (const [c, momentum, count] of [
    [64, 0.1, 16 * 32 * 32],
    [7, 0.3, 3],
    [512, 1, 1],
  ] as const) {
    it(`${c} channels, momentum ${momentum}, ${count} values each: the wasm kernel gives the tensor ops' bits`, async () => {
      await tf.setBackend('wasm');
      expect(tf.getKernel(RUNNING_MOMENTS, 'wasm')).toBeDefined();
      const fused = run(c, momentum, count);
      tf.unregisterKernel(RUNNING_MOMENTS, 'wasm');
      let tensorOps: Float32Array[];
      try {
        tensorOps = run(c, momentum, count);
      } finally {
        registerWasmTrainingKernels();
      }
      const cpu = await onBackend('cpu', () => run(c, momentum, count));
      for (const [i, values] of fused.entries()) {
        expect(Array.from(values)).toEqual(Array.from(tensorOps[i]!));
        expect(Array.from(values)).toEqual(Array.from(cpu[i]!));
      }
      // PyTorch's rule in float64, to float32 rounding.
      const [rm, rv, m, v] = [30, 31, 32, 33].map((s) => Array.from(randomArray(c, s)));
      const corr = count > 1 ? count / (count - 1) : 1;
      expectClose(
        fused[0]!,
        rm!.map((x, i) => x * (1 - momentum) + m![i]! * momentum),
        1e-6,
      );
      expectClose(
        fused[1]!,
        rv!.map((x, i) => (1 + x) * (1 - momentum) + (2 + v![i]!) * corr * momentum),
        1e-6,
      );
    });
  }
});

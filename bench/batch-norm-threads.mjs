// Batch norm (forward + gradient, with the ReLU fused as in 9 of the 20) on each of ResNet-18's
// activation shapes at batch 16: the wasm SIMD kernels (one thread) against the oneDNN addon's
// kernels at 1 and 2 threads, through the registered TF.js kernels, wall and CPU ms per call
// (medians of alternating repetitions), and the share of a step: each shape's count of batch
// norms. The step's own figures are bench/speed.mjs's.
// Usage (after `pnpm run build` and the native build): node bench/batch-norm-threads.mjs [--reps 15]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { median, seededRandom } from './paired.mjs';

const REPS = Number(arg('reps', '15'));
// @mrl/kernels' BATCH_NORM_TRAINING and BATCH_NORM_TRAINING_GRAD.
const BATCH_NORM_TRAINING = 'MrlBatchNormTraining';
const BATCH_NORM_TRAINING_GRAD = 'MrlBatchNormTrainingGrad';
await initBackend('wasm', { threads: 2 });
const forms = {
  wasm: loadOnnxRuntimeKernels({ threads: 1, batchNorm: 'wasm' }),
  'addon, 1 thread': loadOnnxRuntimeKernels({ threads: 1, batchNorm: 'onednn' }),
  'addon, 2 threads': loadOnnxRuntimeKernels({ threads: 2, batchNorm: 'onednn' }),
};
// [N, H, W, C] and how many batch norms of that shape a resnet18-cifar step has.
const SHAPES = [
  [[16, 32, 32, 64], 5],
  [[16, 16, 16, 128], 5],
  [[16, 8, 8, 256], 5],
  [[16, 4, 4, 512], 5],
];
const random = seededRandom(7);

/** One forward and one gradient call with the ReLU fused; returns [wall ms, cpu ms]. */
function once(x, gamma, beta, dy) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  tf.tidy(() => {
    const [y, mean, , rstd] = tf
      .engine()
      .runKernel(BATCH_NORM_TRAINING, { x, gamma, beta }, { epsilon: 1e-5, relu: true });
    const grads = tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD, { dy, x, gamma, mean, rstd, y }, { relu: true });
    grads[0].dataSync(); // the gradient is ready
  });
  const d = process.cpuUsage(c0);
  return [performance.now() - t0, (d.user + d.system) / 1000];
}

console.log(
  `# Batch norm + ReLU, forward and gradient, per call (median of ${REPS}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  '| shape | count | ' +
    Object.keys(forms)
      .map((k) => `${k}: wall ms | cpu ms`)
      .join(' | ') +
    ' |',
);
const totals = Object.fromEntries(Object.keys(forms).map((k) => [k, 0]));
for (const [shape, count] of SHAPES) {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = shape[3];
  const x = tf.tensor4d(random(n), shape);
  const dy = tf.tensor4d(random(n), shape);
  const gamma = tf.tensor1d(random(c));
  const beta = tf.tensor1d(random(c));
  const samples = Object.fromEntries(Object.keys(forms).map((k) => [k, []]));
  for (const native of Object.values(forms)) {
    registerWasmTrainingKernels({ native });
    once(x, gamma, beta, dy);
  }
  for (let r = 0; r < REPS; r++) {
    const order = Object.entries(forms);
    if (r % 2 === 1) order.reverse();
    for (const [name, native] of order) {
      registerWasmTrainingKernels({ native });
      samples[name].push(once(x, gamma, beta, dy));
    }
  }
  const cells = Object.keys(forms).map((k) => {
    const wall = median(samples[k].map(([w]) => w));
    totals[k] += wall * count;
    return `${wall.toFixed(2)} | ${median(samples[k].map(([, cpu]) => cpu)).toFixed(2)}`;
  });
  console.log(`| ${shape.join('x')} | ${count} | ${cells.join(' | ')} |`);
  tf.dispose([x, dy, gamma, beta]);
}
console.log(
  `| **a step** (count x wall) | 20 | ${Object.keys(forms)
    .map((k) => `**${totals[k].toFixed(1)}** | -`)
    .join(' | ')} |`,
);

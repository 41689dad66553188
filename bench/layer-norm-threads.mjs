// Layer norm (forward, and its gradient) and the attention softmax at ViT-tiny's and BERT-mini's
// shapes (bench/speed.mjs's batches): the wasm kernels (one thread: our SIMD layer norm, XNNPACK's
// softmax) against the oneDNN addon's at 1 and at `--threads` threads (packages/kernels/native/
// layer_norm.cc; the same bits), through the registered TF.js kernels, wall and CPU ms per call
// (medians over alternating bursts of calls). The step's own figures are bench/speed.mjs's.
// Usage (after `pnpm run build` and the native build): node bench/layer-norm-threads.mjs [--reps 15] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, seededRandom, wallCpuCells, wallCpuMs } from './paired.mjs';

const REPS = Number(arg('reps', '15'));
const BURST = 10;
const THREADS = Number(arg('threads', '2'));
// @mrl/kernels' LAYER_NORM and LAYER_NORM_GRAD.
const LAYER_NORM = 'MrlLayerNorm';
const LAYER_NORM_GRAD = 'MrlLayerNormGrad';
await initBackend('wasm', { threads: THREADS });
const one = loadOnnxRuntimeKernels({ threads: 1, batchNorm: 'onednn' });
const forms = {
  wasm: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'wasm' }),
  // At one thread register.ts keeps the wasm kernels; the addon's one-thread figure comes from its
  // one-thread functions registered as if at two (only the gate reads `threads`).
  'addon, 1 thread': { ...one, detail: `${one.detail} (1 thread)`, batchNorm: { ...one.batchNorm, threads: 2 } },
  [`addon, ${THREADS} threads`]: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'onednn' }),
};
const random = seededRandom(13);

/**
 * Wall and CPU ms of `fn`. No read-back: both forms run synchronously in the call (the wasm
 * kernels and the addon's), and a copy to JavaScript would cost as much as the kernels.
 */
const timed = (fn) => wallCpuMs(() => tf.tidy(fn));

const CASES = [
  ['ViT-tiny', [16 * 65, 192]],
  ['BERT-mini', [8 * 128, 256]],
];

const names = Object.keys(forms);
console.log(
  `# Layer norm and softmax per call (median of ${REPS} bursts of ${BURST}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  `| case | shape | ${names.map((k) => `${k}: wall ms | cpu ms`).join(' | ')} | wall ratio 1 thread | wall ratio ${THREADS} threads |`,
);
/** Prints one row: `call` timed on each form, in alternating bursts. */
function measure(label, shape, call) {
  // Bursts of BURST calls per form (one untimed first): in a training step the kernels come back
  // to back with the products, which keep the addon's OpenMP threads awake.
  const setUp = (name) => registerWasmTrainingKernels({ native: forms[name] });
  const samples = alternate(names, REPS, () => timed(call), { setUp, warm: false, untimed: 1, perRound: BURST });
  const { walls, cells } = wallCpuCells(samples, names, 3);
  console.log(
    `| ${label} | ${shape.join('x')} | ${cells.join(' | ')} | ${(walls[1] / walls[0]).toFixed(2)} | ${(walls[2] / walls[0]).toFixed(2)} |`,
  );
}

// Nothing returned from the calls: tf.tidy keeps what its function returns.
for (const [model, shape] of CASES) {
  const [rows, cols] = shape;
  const x = tf.tensor2d(random(rows * cols), shape);
  const dy = tf.tensor2d(random(rows * cols), shape);
  const gamma = tf.tensor1d(random(cols));
  const beta = tf.tensor1d(random(cols));
  registerWasmTrainingKernels({ native: forms.wasm });
  const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x, gamma, beta }, { epsilon: 1e-5 });
  y.dispose();
  measure(`${model} layer norm`, shape, () => {
    tf.engine().runKernel(LAYER_NORM, { x, gamma, beta }, { epsilon: 1e-5 });
  });
  measure(`${model} layer norm gradient`, shape, () => {
    tf.engine().runKernel(LAYER_NORM_GRAD, { x, mean, rstd, gamma, dy }, {});
  });
  tf.dispose([x, dy, gamma, beta, mean, rstd]);
}
// The attention softmax (shipped: XNNPACK's, one thread).
for (const [model, shape] of [
  ['ViT-tiny', [48, 65, 65]],
  ['BERT-mini', [8, 4, 128, 128]],
]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const logits = tf.tensor(random(n), shape);
  measure(`${model} softmax`, shape, () => {
    tf.softmax(logits);
  });
  logits.dispose();
}

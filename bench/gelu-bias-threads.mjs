// GELU (forward + gradient) and the bias adds ([rows, n] + [n]) at ViT-tiny's and BERT-mini's
// shapes (bench/speed.mjs's batches): the wasm kernels against the oneDNN addon's at 2 threads
// (packages/kernels/native/batch_norm.cc; the same bits), through the registered TF.js kernels,
// wall and CPU ms per call (medians of alternating repetitions). The step's own figures are
// bench/speed.mjs's.
// Usage (after `pnpm run build` and the native build): node bench/gelu-bias-threads.mjs [--reps 15] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, seededRandom, wallCpuCells, wallCpuMs } from './paired.mjs';

const REPS = Number(arg('reps', '15'));
const THREADS = Number(arg('threads', '2'));
// @mrl/kernels' GELU and GELU_GRAD.
const GELU = 'MrlGelu';
const GELU_GRAD = 'MrlGeluGrad';
await initBackend('wasm', { threads: THREADS });
const forms = {
  wasm: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'wasm' }),
  [`addon, ${THREADS} threads`]: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'onednn' }),
};
const random = seededRandom(11);

/**
 * Wall and CPU ms of `fn`. No read-back: both forms run synchronously in the call (the wasm
 * kernels and the addon's), and a copy to JavaScript would cost as much as the kernels.
 */
const timed = (fn) => wallCpuMs(() => tf.tidy(fn));

// [what, shape, one call].
const CASES = [
  ['ViT-tiny GELU fwd+grad', [16 * 65, 768]],
  ['BERT-mini GELU fwd+grad', [8 * 128, 1024]],
  ['ViT-tiny bias add', [16 * 65, 192]],
  ['ViT-tiny bias add (MLP)', [16 * 65, 768]],
  ['BERT-mini bias add', [8 * 128, 256]],
  ['BERT-mini bias add (MLP)', [8 * 128, 1024]],
];

console.log(
  `# GELU and bias adds per call (median of ${REPS}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  `| case | shape | ${Object.keys(forms)
    .map((k) => `${k}: wall ms | cpu ms`)
    .join(' | ')} | wall ratio |`,
);
for (const [what, shape] of CASES) {
  const n = shape[0] * shape[1];
  const x = tf.tensor2d(random(n), shape);
  const dy = tf.tensor2d(random(n), shape);
  const bias = tf.tensor1d(random(shape[1]));
  const call = what.includes('GELU')
    ? () => {
        const [, s] = tf.engine().runKernel(GELU, { x }, {});
        tf.engine().runKernel(GELU_GRAD, { x, s, dy }, {});
      }
    : () => {
        tf.add(x, bias);
      };
  const names = Object.keys(forms);
  const setUp = (name) => registerWasmTrainingKernels({ native: forms[name] });
  const samples = alternate(names, REPS, () => timed(call), { setUp });
  const { walls, cells } = wallCpuCells(samples, names, 2);
  console.log(`| ${what} | ${shape.join('x')} | ${cells.join(' | ')} | ${(walls[1] / walls[0]).toFixed(2)} |`);
  tf.dispose([x, dy, bias]);
}

// The AdamW update (@mrl/kernels' MrlAdamWUpdate) on the wasm SIMD kernel (one thread) against
// the oneDNN addon's loop at 2 threads, through the registered TF.js kernel, wall ms per call
// (medians of alternating repetitions) at parameter sizes around the addon's threshold
// (ADAMW_NATIVE_VALUES: below it both forms are the wasm kernel) up to BERT-mini's word
// embedding (30522 x 256). The step's own figures are bench/speed.mjs's (`--sgd onednn|wasm`
// switches both updates).
// Usage (after `pnpm run build` and the native build): node bench/adamw-update.mjs [--reps 31] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { median, seededRandom } from './paired.mjs';

const REPS = Number(arg('reps', '31'));
const THREADS = Number(arg('threads', '2'));
// @mrl/kernels' ADAMW_UPDATE.
const ADAMW_UPDATE = 'MrlAdamWUpdate';
await initBackend('wasm', { threads: THREADS });
const forms = {
  wasm: loadOnnxRuntimeKernels({ threads: THREADS, sgd: 'wasm' }),
  [`addon, ${THREADS} threads`]: loadOnnxRuntimeKernels({ threads: THREADS, sgd: 'onednn' }),
};
const SIZES = [4096, 8192, 16384, 32768, 65536, 256 * 1024, 1024 * 1024, 30522 * 256];
const ATTRS = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0.01,
  correction1: 1 - 0.9 ** 3,
  correction2: 1 - 0.999 ** 3,
};
const random = seededRandom(11);

/** One update; returns wall ms. */
function once(inputs) {
  const t0 = performance.now();
  const outs = tf.engine().runKernel(ADAMW_UPDATE, inputs, ATTRS);
  const ms = performance.now() - t0;
  for (const t of outs) t.dispose();
  return ms;
}

console.log(
  `# AdamW update per call, wall ms (median of ${REPS}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
const names = Object.keys(forms);
console.log(`| values | ${names.join(' | ')} | ratio |`);
console.log(`|---:|${names.map(() => '---:|').join('')}---:|`);
for (const n of SIZES) {
  const [param, grad, m, v] = [0, 1, 2, 3].map(() => tf.tensor1d(random(n)));
  const inputs = { param, grad, m, v: tf.abs(v) };
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (const native of Object.values(forms)) {
    registerWasmTrainingKernels({ native });
    once(inputs);
  }
  for (let r = 0; r < REPS; r++) {
    const order = Object.entries(forms);
    if (r % 2 === 1) order.reverse();
    for (const [name, native] of order) {
      registerWasmTrainingKernels({ native });
      samples[name].push(once(inputs));
    }
  }
  const ms = names.map((k) => median(samples[k]));
  console.log(`| ${n} | ${ms.map((x) => x.toFixed(3)).join(' | ')} | ${(ms[1] / ms[0]).toFixed(2)} |`);
  for (const t of [param, grad, m, v, inputs.v]) t.dispose();
}
registerWasmTrainingKernels({ native: loadOnnxRuntimeKernels({ threads: THREADS }) });

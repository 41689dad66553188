// Multi-head self-attention, forward and input gradient together, at ViT-tiny's and a BERT-like
// shape (bench/speed.mjs's batches): the TF.js ops (@mrl/core `multiHeadAttentionOps`: Transpose,
// SplitV, BatchMatMul, Softmax, ... on the registered kernels) against the fused kernels
// MrlAttention/MrlAttentionGrad on the oneDNN addon (packages/kernels/native/attention.cc),
// both with the same native kernels at --threads; wall and CPU ms per call (medians of
// alternating repetitions). Run once per thread count (the wasm backend's threads are set once).
// Usage (after `pnpm run build` and the native build): node bench/attention-threads.mjs [--reps 15] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  initBackend,
  loadOnnxRuntimeKernels,
  multiHeadAttention,
  multiHeadAttentionOps,
  registerWasmTrainingKernels,
} from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, seededRandom, wallCpuCells, wallCpuMs } from './paired.mjs';

const REPS = Number(arg('reps', '15'));
const THREADS = Number(arg('threads', '2'));
await initBackend('wasm', { threads: THREADS });
const native = loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'onednn' });
registerWasmTrainingKernels({ native });
const random = seededRandom(13);

/**
 * Wall and CPU ms of `fn`. No read-back: both forms run synchronously in the call (wasm kernels
 * and the addon's), and a copy to JavaScript costs more than the kernels.
 */
const timed = (fn) => wallCpuMs(() => tf.tidy(fn));

// [what, batch, tokens, heads, head width, with BERT's padding mask and attention dropout (0.1)].
const CASES = [
  ['ViT-tiny', 16, 65, 3, 64, false],
  ['BERT-mini, mask and dropout', 8, 128, 4, 64, true],
];
const FORMS = { 'TF.js ops': multiHeadAttentionOps, fused: multiHeadAttention };

console.log(
  `# attention forward + d(qkv) per call at ${THREADS} thread(s) (median of ${REPS}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  `| case | qkv | ${Object.keys(FORMS)
    .map((k) => `${k}: wall ms | cpu ms`)
    .join(' | ')} | wall ratio |`,
);
for (const [what, b, t, h, dh, masked] of CASES) {
  const shape = [b, t, 3 * h * dh];
  const qkv = tf.tensor3d(random(b * t * 3 * h * dh), shape);
  const w = tf.tensor3d(random(b * t * h * dh), [b, t, h * dh]);
  // Padding on the last 16 keys of every other row; tf.dropout's multiplier at rate 0.1.
  const options = masked
    ? {
        keyBias: tf.tensor2d(
          Array.from({ length: b * t }, (_, i) => (Math.floor(i / t) % 2 === 1 && i % t >= t - 16 ? -1e9 : 0)),
          [b, t],
        ),
        dropout: tf.div(tf.floor(tf.add(tf.randomUniform([b, h, t, t], 0, 1, 'float32', 5), 0.9)), 0.9),
      }
    : {};
  const calls = Object.fromEntries(
    Object.entries(FORMS).map(([k, f]) => [
      k,
      () => {
        tf.grad((x) => tf.sum(tf.mul(f(x, h, options), w)))(qkv);
      },
    ]),
  );
  const names = Object.keys(FORMS);
  const samples = alternate(names, REPS, (name) => timed(calls[name]));
  const { walls, cells } = wallCpuCells(samples, names, 2);
  console.log(`| ${what} | ${shape.join('x')} | ${cells.join(' | ')} | ${(walls[1] / walls[0]).toFixed(2)} |`);
  tf.dispose([qkv, w, ...Object.values(options)]);
}

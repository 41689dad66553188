// Transpose, SplitV, Concat and Slice at ViT-tiny's and BERT-mini's shapes (bench/speed.mjs's
// batches, the shapes of its --profile --by-shape table), and a sweep of sizes around the
// threshold: the kernels the addon replaces (the shipped wasm kernels; ONNX Runtime's Split for
// SplitV) against the oneDNN addon's copies (packages/kernels/native/layout.cc; the same bits) on
// 1 and on --threads threads, through the registered TF.js kernels, wall and CPU ms per call
// (medians of alternating repetitions). The addon's copies are registered at every thread
// count: the 1-thread column is why.
// Usage (after `pnpm run build` and the native build): node bench/layout-threads.mjs [--reps 21] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, seededRandom, wallCpuCells, wallCpuMs } from './paired.mjs';

const REPS = Number(arg('reps', '21'));
const THREADS = Number(arg('threads', '2'));
await initBackend('wasm', { threads: THREADS });
const one = loadOnnxRuntimeKernels({ threads: 1, batchNorm: 'onednn' });
const forms = {
  shipped: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'wasm' }),
  // The addon's kernels on one OpenMP thread, registered as if at two (they are not, at one).
  'addon, 1 thread': { ...one, detail: `${one.detail} (1 thread)`, batchNorm: { ...one.batchNorm, threads: 2 } },
  [`addon, ${THREADS} threads`]: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'onednn' }),
};
const random = seededRandom(12);

/** Wall and CPU ms of `fn` (all synchronous: no read-back, which would cost more than the copy). */
const timed = (fn) => wallCpuMs(() => tf.tidy(fn));

const transpose = (shape, perm) => [[shape], ([x]) => tf.transpose(x, perm)];
// [what, input shapes, one call].
const CASES = [
  ['ViT SplitV q|k|v', ...[[[16, 9, 65, 64]], ([x]) => tf.split(x, 3, 1)]],
  ['ViT Transpose [0,2,1,3]', ...transpose([16, 65, 9, 64], [0, 2, 1, 3])],
  ['ViT Transpose [0,2,1,3]', ...transpose([16, 9, 65, 64], [0, 2, 1, 3])],
  ['ViT Transpose [0,2,1,3]', ...transpose([16, 65, 3, 64], [0, 2, 1, 3])],
  ['ViT Transpose [0,2,1,3]', ...transpose([16, 3, 65, 64], [0, 2, 1, 3])],
  [
    'ViT Concat axis 1',
    ...[
      [
        [16, 3, 65, 64],
        [16, 3, 65, 64],
        [16, 3, 65, 64],
      ],
      (xs) => tf.concat(xs, 1),
    ],
  ],
  ['BERT Transpose [0,2,1,3]', ...transpose([8, 128, 4, 64], [0, 2, 1, 3])],
  ['BERT Transpose [0,2,1,3]', ...transpose([8, 4, 128, 64], [0, 2, 1, 3])],
  ['BERT Transpose [0,1,3,2]', ...transpose([8, 4, 64, 128], [0, 1, 3, 2])],
  ['BERT Slice [:, :128]', ...[[[1024, 256]], ([x]) => tf.slice(x, [0, 0], [-1, 128])]],
  ['BERT Slice [:, :64]', ...[[[1024, 256]], ([x]) => tf.slice(x, [0, 0], [-1, 64])]],
  ['Transpose, runs of 2 floats', ...transpose([1024, 128, 2], [1, 0, 2])],
  // For reference: a bias add on the addon's threads (bench/gelu-bias-threads.mjs).
  ['ViT bias add (Add)', ...[[[1040, 768], [768]], ([x, b]) => tf.add(x, b)]],
  // The threshold: the same copies at 8 Ki to 64 Ki values.
  ...[8192, 16384, 32768, 65536].flatMap((n) => [
    [`sweep Transpose ${n}`, ...transpose([n / 256, 4, 64], [1, 0, 2])],
    [`sweep Transpose 2-D ${n}`, ...transpose([n / 128, 128], [1, 0])],
    [`sweep SplitV ${n}`, ...[[[n / 128, 128]], ([x]) => tf.split(x, [32, 32, 64], 1)]],
    [
      `sweep Concat ${n}`,
      ...[
        [
          [n / 128, 64],
          [n / 128, 64],
        ],
        (xs) => tf.concat(xs, 1),
      ],
    ],
    [`sweep Slice ${n}`, ...[[[n / 64, 128]], ([x]) => tf.slice(x, [0, 0], [-1, 64])]],
  ]),
];

console.log(
  `# Layout copies per call (median of ${REPS}); load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
const names = Object.keys(forms);
console.log(
  `| case | input | ${names.map((k) => `${k}: wall ms | cpu ms`).join(' | ')} | wall ratio ${names[2]} / shipped |`,
);
console.log(`|---|---|${names.map(() => '---|---|').join('')}---|`);
for (const [what, shapes, op] of CASES) {
  const xs = shapes.map((s) => tf.tensor(random(tf.util.sizeFromShape(s)), s));
  // Nothing returned to the tidy: it frees the outputs (a kept one would leave fresh pages to fault in).
  const call = () => {
    op(xs);
  };
  const setUp = (name) => registerWasmTrainingKernels({ native: forms[name] });
  const samples = alternate(names, REPS, () => timed(call), { setUp });
  const { walls, cells } = wallCpuCells(samples, names, 3);
  const input = shapes.map((s) => `[${s.join(',')}]`).join(' ');
  console.log(`| ${what} | ${input} | ${cells.join(' | ')} | ${(walls[2] / walls[0]).toFixed(2)} |`);
  tf.dispose(xs);
}

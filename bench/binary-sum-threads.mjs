// Multiply, Sub, the Add broadcasts and the sums at ViT-tiny's and BERT-mini's shapes
// (bench/speed.mjs's batches, the calls its --profile --by-shape table lists), and sums over the
// other axis sets (every axis: a gradient-norm clip's sum of squares, BERT-mini's [30522, 256]
// embedding gradient among them; two axis groups; a middle axis): the shipped kernels (the wasm
// backend's Multiply/Sub/Add; Sum on ONNX Runtime's ReduceSum) against the oneDNN addon's
// (packages/kernels/native/binary.cc), through the registered TF.js kernels, wall and CPU ms per
// call (medians of alternating repetitions, each after one untimed call). At --threads 1
// the project keeps the shipped Multiply/Sub/Add (the row sums run on the addon there too); the
// addon's are timed there anyway (registered as if at 2 threads, its calls on one OpenMP thread)
// to show why. On a machine busier than its cores (load average above the core
// count) each addon call waits for a core for its second thread, about 0.5-1 ms: compare on an
// idle machine. The step's own figures are bench/speed.mjs's.
// Usage (after `pnpm run build` and the native build): node bench/binary-sum-threads.mjs [--reps 15] [--threads 2]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, seededRandom, wallCpuCells, wallCpuMs } from './paired.mjs';

const REPS = Number(arg('reps', '15'));
const THREADS = Number(arg('threads', '2'));
await initBackend('wasm', { threads: THREADS });
const addon = loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'onednn' });
const forms = {
  shipped: loadOnnxRuntimeKernels({ threads: THREADS, batchNorm: 'wasm' }),
  // At one thread register.ts keeps the shipped kernels: claim 2 threads to install the addon's
  // (its functions still run on the THREADS they were loaded with).
  [`addon, ${THREADS} thread${THREADS === 1 ? '' : 's'}`]:
    THREADS >= 2
      ? addon
      : { ...addon, detail: `${addon.detail} (1 thread)`, batchNorm: { ...addon.batchNorm, threads: 2 } },
};
const random = seededRandom(11);

/** Wall and CPU ms of `fn` (no read-back: both forms finish their work in the call). */
const timed = (fn) => wallCpuMs(() => tf.tidy(fn));

// [what, a shape, b shape or reduced axes].
const CASES = [
  ['ViT Multiply scalar', [48, 65, 65], []],
  ['ViT Multiply same', [48, 65, 65], [48, 65, 65]],
  ['ViT Multiply column', [48, 65, 1], [48, 65, 65]],
  ['ViT Sub same', [48, 65, 65], [48, 65, 65]],
  ['BERT Multiply same', [8, 4, 128, 128], [8, 4, 128, 128]],
  ['BERT Multiply same', [1024, 256], [1024, 256]],
  ['BERT Multiply scalar', [8, 4, 128, 128], []],
  ['BERT Multiply column', [8, 4, 128, 1], [8, 4, 128, 128]],
  ['BERT Sub column', [8, 4, 128, 128], [8, 4, 128, 1]],
  ['BERT Add scalar', [1024, 256], []],
  ['BERT Add scalar', [8, 4, 128, 128], []],
  ['BERT Add mask', [8, 4, 128, 128], [8, 1, 1, 128]],
  ['ViT Sum rows', [1040, 192], 'axis 0'],
  ['ViT Sum rows', [1040, 768], 'axis 0'],
  ['ViT Sum rows', [1040, 576], 'axis 0'],
  ['ViT Sum last', [48, 65, 65], 'axis -1'],
  ['BERT Sum rows', [1024, 256], 'axis 0'],
  ['BERT Sum rows', [1024, 1024], 'axis 0'],
  ['Sum all', [8, 128, 256], 'all'],
  ['BERT clip Sum all', [30522, 256], 'all'],
  ['Sum two groups', [8, 128, 256], 'axes 0,2'],
  ['Sum two groups', [8, 4, 128, 128], 'axes 1,3'],
  ['ViT Sum middle', [16, 65, 192], 'axis 1'],
  ['BERT Sum middle', [8, 4, 128, 128], 'axis 2'],
];

console.log(
  `# Multiply/Sub/Add/Sum per call (median of ${REPS}), ${THREADS} thread${THREADS === 1 ? '' : 's'}; load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  `| case | shapes | ${Object.keys(forms)
    .map((k) => `${k}: wall ms | cpu ms`)
    .join(' | ')} | wall ratio |`,
);
const size = (shape) => shape.reduce((p, d) => p * d, 1);
for (const [what, aShape, second] of CASES) {
  const a = tf.tensor(random(size(aShape)), aShape);
  const b = typeof second === 'string' ? undefined : tf.tensor(random(size(second)), second);
  const op = what.includes('Multiply') ? tf.mul : what.includes('Sub') ? tf.sub : tf.add;
  // 'all', 'axis k' or 'axes j,k'.
  const axis = typeof second !== 'string' || second === 'all' ? undefined : second.split(' ')[1].split(',').map(Number);
  const call = b === undefined ? () => tf.sum(a, axis) : () => op(a, b);
  const names = Object.keys(forms);
  const setUp = (name) => registerWasmTrainingKernels({ native: forms[name] });
  // One untimed call per round first: the first call after the other form also pays for waking
  // this form's threads (a few us on an idle machine, up to a scheduler slice on a loaded one).
  const samples = alternate(names, REPS, () => timed(call), { setUp, untimed: 1 });
  const { walls, cells } = wallCpuCells(samples, names, 3);
  const shapes = b === undefined ? `${aShape.join('x')} ${second}` : `${aShape.join('x')}, ${second.join('x') || '[]'}`;
  console.log(`| ${what} | ${shapes} | ${cells.join(' | ')} | ${(walls[1] / walls[0]).toFixed(2)} |`);
  tf.dispose([a, b].filter((t) => t !== undefined));
}

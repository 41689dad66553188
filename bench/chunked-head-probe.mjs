// BERT-mini's chunked MLM head alone (the loss and the three gradients of the masked states, no
// encoder), on ONNX Runtime's graphs (`--matmul onnxruntime`: products on MLAS) and on the oneDNN
// addon (native/onednn_prefix_ce.cc), with every nesting dim ('mrl') and with the full dim only
// ('plain'), in one run: the four kinds run round-robin (the order reversed every other round) and
// the ratios are medians of the ratios of back-to-back pairs. Times are the process's CPU time
// (user + system) per head step; wall-clock medians are printed too. Also prints what oneDNN chose
// for the head's products and checks that both sources give the same losses and gradients.
//
// Usage (after `pnpm run build` and `pnpm --filter @mrl/kernels run build:native`):
//   node bench/chunked-head-probe.mjs [--reps 15] [--threads 1] [--chunk N] [--rows 154]
// --chunk: vocabulary classes per chunk (default DEFAULT_VOCAB_CHUNK, what training uses)
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/core';
import { arg } from './args.mjs';

const {
  CHUNKED_PREFIX_CE,
  CHUNKED_PREFIX_CE_GRAD,
  DEFAULT_VOCAB_CHUNK,
  loadOnnxRuntimeKernels,
  registerWasmTrainingKernels,
} = await import('../packages/kernels/dist/index.js');

const REPS = Number(arg('reps', '15'));
const THREADS = Number(arg('threads', '1'));
const CHUNK = Number(arg('chunk', String(DEFAULT_VOCAB_CHUNK)));
// bench/speed.mjs masks 15% of 8 x 128 positions: 154 rows.
const ROWS = Number(arg('rows', '154'));
const [WIDTH, CLASSES] = [256, 30522];
const DIMS = { mrl: [8, 16, 32, 64, 128, 256], plain: [256] };

await initBackend('wasm', { threads: THREADS });
const sources = {
  onnxruntime: loadOnnxRuntimeKernels({ threads: THREADS, matmul: 'onnxruntime' }),
  onednn: loadOnnxRuntimeKernels({ threads: THREADS, matmul: 'onednn' }),
};
if (sources.onednn?.prefixCe === undefined) {
  console.error('the oneDNN addon with the chunked head is not built: pnpm --filter @mrl/kernels run build:native');
  process.exit(1);
}

const seeded = (n, seed) => {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
};
const embedding = tf.tensor2d(seeded(ROWS * WIDTH, 1), [ROWS, WIDTH]);
const weight = tf.tensor2d(
  seeded(CLASSES * WIDTH, 2).map((v) => v * 0.1),
  [CLASSES, WIDTH],
);
const bias = tf.tensor1d(seeded(CLASSES, 3).map((v) => v * 0.1));
const labels = tf.tensor1d(
  Int32Array.from({ length: ROWS }, (_, i) => 5 + ((i * 7919) % (CLASSES - 5))),
  'int32',
);

/** One head step (loss and gradients) on `source`; returns the outputs' data when `keep`. */
function step(source, nesting, keep = false) {
  registerWasmTrainingKernels({ native: sources[source] });
  return tf.tidy(() => {
    const dims = DIMS[nesting];
    const attrs = { dims, chunk: CHUNK };
    const [losses, lse] = tf.engine().runKernel(CHUNKED_PREFIX_CE, { embedding, weight, bias, labels }, attrs);
    const dy = tf.ones([dims.length]);
    const grads = tf.engine().runKernel(CHUNKED_PREFIX_CE_GRAD, { dy, lse, labels, embedding, weight, bias }, attrs);
    const out = [losses, ...grads].map((t) => t.dataSync());
    return keep ? out : null;
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const paired = (a, b) => median(a.map((x, i) => x / b[i]));

console.log(`# BERT-mini's chunked MLM head alone: ONNX Runtime graphs vs oneDNN`);
console.log(
  `${ROWS} rows x ${WIDTH}, vocabulary ${CLASSES}, chunk ${CHUNK}, ${THREADS} thread(s); ${sources.onednn.detail}`,
);
for (const nesting of ['mrl', 'plain']) {
  const [a, b] = ['onnxruntime', 'onednn'].map((s) => step(s, nesting, true));
  let worst = 0;
  for (let o = 0; o < a.length; o++) {
    let rms = 0;
    for (const v of a[o]) rms += v * v;
    rms = Math.sqrt(rms / a[o].length);
    for (let i = 0; i < a[o].length; i++)
      worst = Math.max(worst, Math.abs(a[o][i] - b[o][i]) / (Math.abs(a[o][i]) + rms));
  }
  console.log(
    `${nesting}: oneDNN vs ONNX Runtime, largest relative difference over losses and gradients ${worst.toExponential(1)}`,
  );
}

const kinds = [];
for (const source of ['onnxruntime', 'onednn']) {
  for (const nesting of ['mrl', 'plain']) kinds.push({ source, nesting, cpu: [], wall: [] });
}
for (let r = 0; r < REPS; r++) {
  const order = r % 2 === 0 ? kinds : [...kinds].reverse();
  for (const k of order) {
    registerWasmTrainingKernels({ native: sources[k.source] });
    const [c0, w0] = [process.cpuUsage(), performance.now()];
    step(k.source, k.nesting);
    const c = process.cpuUsage(c0);
    k.wall.push(performance.now() - w0);
    k.cpu.push((c.user + c.system) / 1000);
  }
}
const by = (source, nesting) => kinds.find((k) => k.source === source && k.nesting === nesting);
console.log('\n| head on | plain cpu ms | MRL cpu ms | MRL - plain ms | MRL/plain (paired) | wall ms plain / MRL |');
console.log('|---|---|---|---|---|---|');
for (const source of ['onnxruntime', 'onednn']) {
  const [m, p] = [by(source, 'mrl'), by(source, 'plain')];
  console.log(
    `| ${source} | ${median(p.cpu).toFixed(1)} | ${median(m.cpu).toFixed(1)} | ${(median(m.cpu) - median(p.cpu)).toFixed(1)} | ${paired(m.cpu, p.cpu).toFixed(3)} | ${median(p.wall).toFixed(1)} / ${median(m.wall).toFixed(1)} |`,
  );
}
console.log(
  `oneDNN / ONNX Runtime (paired cpu): mrl ${paired(by('onednn', 'mrl').cpu, by('onnxruntime', 'mrl').cpu).toFixed(3)}, plain ${paired(by('onednn', 'plain').cpu, by('onnxruntime', 'plain').cpu).toFixed(3)}`,
);

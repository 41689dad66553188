// The Matryoshka softmax cross-entropy of a head with few classes alone (loss and gradients, no
// encoder), on ONNX Runtime (`fewClassHead: 'onnxruntime'`: a product and a softmax per nesting
// dim) and on the oneDNN addon (native/prefix_ce_few.cc: one call each way), with every nesting dim
// ('mrl') and with the full dim only ('plain'), for several class counts up to the addon's limit
// (128). The four kinds run round-robin (the order reversed every other round); times are the
// process's CPU time per head step (user + system), ratios medians of back-to-back pairs. Also
// checks that both sources give the same losses and gradients (to 1e-5 of the largest value).
//
// Usage (after `pnpm run build` and `pnpm --filter @mrl/kernels run build:native`):
//   node bench/few-class-head-probe.mjs [--reps 30] [--threads 1] [--rows 256] [--width 512] [--classes 10,64,100,128]
// Defaults: the MLP's head in bench/speed.mjs (256 rows, d = 512, 10 classes, dims 8 .. 512).
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/core';
import { arg } from './args.mjs';
import { alternate, cpuMs, maxRel, median, seededRandom } from './paired.mjs';

const { PREFIX_SOFTMAX_CE, PREFIX_SOFTMAX_CE_GRAD, loadOnnxRuntimeKernels, registerWasmTrainingKernels } = await import(
  '../packages/kernels/dist/index.js'
);

const REPS = Number(arg('reps', '30'));
const THREADS = Number(arg('threads', '1'));
const ROWS = Number(arg('rows', '256'));
const WIDTH = Number(arg('width', '512'));
const CLASS_COUNTS = arg('classes', '10,64,100,128').split(',').map(Number);
const nestingDims = () => {
  const dims = [];
  for (let m = 8; m < WIDTH; m *= 2) dims.push(m);
  return [...dims, WIDTH];
};
const DIMS = { mrl: nestingDims(), plain: [WIDTH] };

await initBackend('wasm', { threads: THREADS });
const sources = {
  onnxruntime: loadOnnxRuntimeKernels({ threads: THREADS, fewClassHead: 'onnxruntime' }),
  onednn: loadOnnxRuntimeKernels({ threads: THREADS, fewClassHead: 'onednn' }),
};

const random = seededRandom(1);
/** Median of the ratios of paired samples (a[i] / b[i]). */
const pairedRatio = (a, b) => median(a.map((x, i) => x / b[i]));

console.log('# The few-class Matryoshka head alone: ONNX Runtime calls vs the oneDNN addon');
console.log(`command: node bench/few-class-head-probe.mjs ${process.argv.slice(2).join(' ')}`);
console.log(
  `rows ${ROWS}, d ${WIDTH}, dims [${DIMS.mrl.join(', ')}] vs [${WIDTH}], ${THREADS} thread(s), ${REPS} reps; CPU ms per head step (loss and gradients)`,
);
console.log('');
console.log(
  '| classes | ONNX Runtime mrl / plain | addon mrl / plain | addon / ONNX Runtime, mrl | MRL/plain, ONNX Runtime | MRL/plain, addon |',
);
console.log('|---|---|---|---|---|---|');
for (const classes of CLASS_COUNTS) {
  const embedding = tf.tensor2d(
    random(ROWS * WIDTH).map((v) => v * 0.5),
    [ROWS, WIDTH],
  );
  const weight = tf.tensor2d(
    random(WIDTH * classes).map((v) => v * 0.05),
    [WIDTH, classes],
  );
  const bias = tf.tensor1d(random(classes).map((v) => v * 0.5));
  const labels = tf.tensor1d(
    Int32Array.from({ length: ROWS }, (_, i) => (i * 7) % classes),
    'int32',
  );
  const step = (source, nesting, keep = false) => {
    registerWasmTrainingKernels({ native: sources[source] });
    return tf.tidy(() => {
      const attrs = { dims: DIMS[nesting], classesFirst: false, hasBias: true };
      const [losses, probs] = tf.engine().runKernel(PREFIX_SOFTMAX_CE, { embedding, weight, bias, labels }, attrs);
      const dy = tf.ones([DIMS[nesting].length]);
      const grads = tf.engine().runKernel(PREFIX_SOFTMAX_CE_GRAD, { dy, probs, labels, embedding, weight }, attrs);
      const out = [losses, ...grads].map((t) => t.dataSync());
      return keep ? out : null;
    });
  };
  const want = step('onnxruntime', 'mrl', true);
  const got = step('onednn', 'mrl', true);
  want.forEach((w, k) => {
    const rel = maxRel(got[k], w);
    if (!(rel <= 1e-5)) throw new Error(`classes ${classes}: output ${k} differs by ${rel} of its largest value`);
  });
  const kinds = ['onnxruntime/mrl', 'onnxruntime/plain', 'onednn/mrl', 'onednn/plain'];
  for (let r = 0; r < 2; r++) for (const k of kinds) step(...k.split('/'));
  const times = alternate(kinds, REPS, (k) => cpuMs(() => step(...k.split('/'))));
  const m = (k) => median(times[k]).toFixed(2);
  console.log(
    `| ${classes} | ${m('onnxruntime/mrl')} / ${m('onnxruntime/plain')} | ${m('onednn/mrl')} / ${m('onednn/plain')} | ${pairedRatio(times['onednn/mrl'], times['onnxruntime/mrl']).toFixed(3)} | ${pairedRatio(times['onnxruntime/mrl'], times['onnxruntime/plain']).toFixed(3)} | ${pairedRatio(times['onednn/mrl'], times['onednn/plain']).toFixed(3)} |`,
  );
  tf.dispose([embedding, weight, bias, labels]);
}

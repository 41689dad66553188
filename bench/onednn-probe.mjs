// oneDNN's convolutions (the optional addon, packages/kernels/native/onednn.cc) against the ONNX
// Runtime graphs they replace (`convolution: 'onnxruntime'`: NCHWc where it is used, im2col +
// SGEMM, the per-tap filter-gradient graph), on every distinct convolution of ResNet-18 CIFAR at
// batch 16: forward, input gradient and filter gradient, the stem and the 1x1 stride-2 shortcuts
// included. Each pair checked against each other (max relative difference), timed in CPU time of
// this process, forms alternating; the last column is the kernel oneDNN picked. Per step, each
// row runs as many times as the network has that layer (count).
// Run after `pnpm run build` and `pnpm --filter @mrl/kernels run build:native`:
//   node bench/onednn-probe.mjs [--reps 7] [--threads 1]
import os from 'node:os';
import { arg } from './args.mjs';
import { maxRel, paired, seededRandom, size } from './paired.mjs';

const { loadOnnxRuntimeKernels } = await import('../packages/kernels/dist/native/onnxruntime.js');
const { loadOneDnnConvolutions } = await import('../packages/kernels/dist/native/onednn.js');

const REPS = Number(arg('reps', '7'));
const THREADS = Number(arg('threads', '1'));
const ort = loadOnnxRuntimeKernels({ threads: THREADS, convolution: 'onnxruntime' });
if (ort === undefined) throw new Error('onnxruntime-node does not load here');
const dnnl = loadOneDnnConvolutions({ threads: THREADS, fallback: ort, required: true });

const random = seededRandom(7);

console.log(`node ${process.version}, ${ort.detail} against ${dnnl.detail}, ${THREADS} thread(s)`);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus; CPU ms per call, medians of ${REPS} alternating pairs`,
);
const N = 16;
// [H, Cin, Cout, kernel, stride, pads (TF.js 'same': top, left, bottom, right), count per step]
const LAYERS = [
  [32, 3, 64, 3, 1, [1, 1, 1, 1], 1],
  [32, 64, 64, 3, 1, [1, 1, 1, 1], 4],
  [32, 64, 128, 3, 2, [0, 0, 1, 1], 1],
  [32, 64, 128, 1, 2, [0, 0, 0, 0], 1],
  [16, 128, 128, 3, 1, [1, 1, 1, 1], 3],
  [16, 128, 256, 3, 2, [0, 0, 1, 1], 1],
  [16, 128, 256, 1, 2, [0, 0, 0, 0], 1],
  [8, 256, 256, 3, 1, [1, 1, 1, 1], 3],
  [8, 256, 512, 3, 2, [0, 0, 1, 1], 1],
  [8, 256, 512, 1, 2, [0, 0, 0, 0], 1],
  [4, 512, 512, 3, 1, [1, 1, 1, 1], 3],
];
console.log('layer (batch 16)                     pass  count    ORT oneDNN  ratio  max rel diff  oneDNN kernel');
const totals = { ort: 0, dnnl: 0 };
const byPass = { fwd: [0, 0], dX: [0, 0], dW: [0, 0] };
let worst = 0;
for (const [h, cIn, cOut, k, s, pads, count] of LAYERS) {
  const ho = Math.ceil(h / s);
  const xShape = [N, h, h, cIn];
  const fShape = [k, k, cIn, cOut];
  const yShape = [N, ho, ho, cOut];
  const geometry = { strides: [s, s], dilations: [1, 1], pads };
  const label = `${h}x${h}x${cIn}->${cOut} ${k}x${k} s${s}${cIn === 3 ? ' stem' : ''}`;
  const passes = [
    [
      'fwd',
      'forward',
      (kn, a, b, out) => kn.conv2d(a, xShape, b, fShape, out, yShape, geometry),
      xShape,
      fShape,
      yShape,
    ],
    [
      'dX',
      'inputGradient',
      (kn, a, b, out) => kn.conv2dBackpropInput(a, yShape, b, fShape, out, xShape, geometry),
      yShape,
      fShape,
      xShape,
    ],
    [
      'dW',
      'filterGradient',
      (kn, a, b, out) =>
        kn.conv2dBackpropFilter(a, xShape, b, yShape, out, fShape, { ...geometry, pads: [pads[0], pads[1], 0, 0] }),
      xShape,
      yShape,
      fShape,
    ],
  ];
  for (const [pass, which, call, aShape, bShape, outShape] of passes) {
    // The stem's input gradient is never computed in training (the images are not trained).
    if (pass === 'dX' && cIn === 3) continue;
    // A 1x1 unpadded filter gradient is a TF.js-side product (`pointwise`), on neither.
    if (pass === 'dW' && k === 1) continue;
    const a = random(size(aShape));
    const b = random(size(bShape));
    const yOrt = new Float32Array(size(outShape));
    const yDnnl = new Float32Array(yOrt.length);
    const t = paired(
      () => call(ort, a, b, yOrt),
      () => call(dnnl, a, b, yDnnl),
      REPS,
    );
    const diff = maxRel(yDnnl, yOrt);
    worst = Math.max(worst, diff);
    totals.ort += count * t.old;
    totals.dnnl += count * t.now;
    byPass[pass][0] += count * t.old;
    byPass[pass][1] += count * t.now;
    console.log(
      `${label.padEnd(36)} ${pass.padEnd(4)} ${String(count).padStart(5)} ${t.old.toFixed(2).padStart(6)} ${t.now.toFixed(2).padStart(6)} ${t.ratio.toFixed(2).padStart(6)} ${diff.toExponential(1).padStart(13)}  ${dnnl.implementation(which, xShape, fShape, yShape, geometry)}`,
    );
  }
}
for (const [pass, [o, d]] of Object.entries(byPass)) {
  console.log(`per step, ${pass}: ONNX Runtime ${o.toFixed(1)} ms, oneDNN ${d.toFixed(1)} ms (${(d / o).toFixed(2)}x)`);
}
console.log(
  `per step, all convolutions: ONNX Runtime ${totals.ort.toFixed(1)} ms, oneDNN ${totals.dnnl.toFixed(1)} ms (${(totals.dnnl / totals.ort).toFixed(2)}x); worst max rel diff ${worst.toExponential(1)}`,
);

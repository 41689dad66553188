// ONNX Runtime's NCHWc convolution (MLAS's direct kernels on channel-blocked data) with a filter
// that is a graph input, against ONNX's Conv (im2col + SGEMM), on ResNet-18's layer shapes at
// batch 16: the kernels' `nchwc` setting off and on (src/native/onnxruntime.ts, nchwcConvModel:
// ReorderInput, the contrib Conv of domain com.microsoft.nchwc, ReorderOutput, the filter
// reordered inside the graph). `NCHWc` runs the NCHWc graph on every shape (min widths 0), `shipped`
// is what training uses (narrow outputs stay on im2col). Each checked against im2col, timed in CPU
// time of this process, forms alternating.
// Run after `pnpm run build`:  node bench/nchwc-probe.mjs [--reps 7] [--threads 1]
import os from 'node:os';
import { arg } from './args.mjs';
import { maxRel, paired, seededRandom, size } from './paired.mjs';

const { loadOnnxRuntimeKernels, NCHWC_MIN_WIDTH } = await import('../packages/kernels/dist/native/onnxruntime.js');

const REPS = Number(arg('reps', '7'));
const pairedRun = (oldForm, newForm) => paired(oldForm, newForm, REPS);
const THREADS = Number(arg('threads', '1'));
const im2col = loadOnnxRuntimeKernels({ threads: THREADS, convolution: 'onnxruntime', nchwc: false });
const shipped = loadOnnxRuntimeKernels({ threads: THREADS, convolution: 'onnxruntime' });
const everywhere = loadOnnxRuntimeKernels({
  threads: THREADS,
  convolution: 'onnxruntime',
  nchwcMinWidth: { forward: 0, inputGradient: 0 },
});
if (im2col === undefined || shipped === undefined || everywhere === undefined)
  throw new Error('onnxruntime-node does not load here');

const random = seededRandom(7);

console.log(`node ${process.version}, ${shipped.detail}`);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus; CPU ms per call, medians of ${REPS} alternating pairs`,
);
console.log(
  `shipped: NCHWc from output width ${NCHWC_MIN_WIDTH.forward} (forward), ${NCHWC_MIN_WIDTH.inputGradient} (stride-1 input gradient)`,
);
console.log('ResNet-18 layer (batch 16)              im2col  NCHWc  ratio  max rel diff  shipped');
const N = 16;
// [H, Cin, Cout, kernel, stride, pads (top, left, bottom, right: TF.js 'same'), what]
const FORWARD = [
  [32, 3, 64, 3, 1, [1, 1, 1, 1], 'stem'],
  [32, 64, 64, 3, 1, [1, 1, 1, 1], ''],
  [32, 64, 128, 3, 2, [0, 0, 1, 1], ''],
  [16, 128, 128, 3, 1, [1, 1, 1, 1], ''],
  [16, 128, 256, 3, 2, [0, 0, 1, 1], ''],
  [8, 256, 256, 3, 1, [1, 1, 1, 1], ''],
  [8, 256, 512, 3, 2, [0, 0, 1, 1], ''],
  [4, 512, 512, 3, 1, [1, 1, 1, 1], ''],
];
let worst = 0;
const totals = { im2col: 0, nchwc: 0, shipped: 0 };
function row(label, call, xShape, fShape, yShape, width, minWidth) {
  const x = random(size(xShape));
  const f = random(size(fShape));
  const yOld = new Float32Array(size(yShape));
  const yNew = new Float32Array(yOld.length);
  const ySh = new Float32Array(yOld.length);
  const t = pairedRun(
    () => call(im2col, x, f, yOld),
    () => call(everywhere, x, f, yNew),
  );
  call(shipped, x, f, ySh);
  const diff = Math.max(maxRel(yNew, yOld), maxRel(ySh, yOld));
  worst = Math.max(worst, diff);
  const usesNchwc = width >= minWidth;
  totals.im2col += t.old;
  totals.nchwc += t.now;
  totals.shipped += usesNchwc ? t.now : t.old;
  console.log(
    label.padEnd(38) +
      `${t.old.toFixed(2).padStart(7)} ${t.now.toFixed(2).padStart(6)} ${t.ratio.toFixed(2).padStart(6)} ${diff.toExponential(1).padStart(13)}  ${usesNchwc ? 'NCHWc' : 'im2col'}`,
  );
}
for (const [h, cIn, cOut, k, s, pads, what] of FORWARD) {
  const ho = Math.ceil(h / s);
  const xShape = [N, h, h, cIn];
  const fShape = [k, k, cIn, cOut];
  const yShape = [N, ho, ho, cOut];
  const geometry = { strides: [s, s], dilations: [1, 1], pads };
  row(
    `fwd ${h}x${h}x${cIn}->${cOut} ${k}x${k} s${s} ${what}`,
    (kernels, x, f, y) => kernels.conv2d(x, xShape, f, fShape, y, yShape, geometry),
    xShape,
    fShape,
    yShape,
    ho,
    NCHWC_MIN_WIDTH.forward,
  );
}
// The stride-1 input gradient: dX = conv(dY, rotated filter).
for (const [h, c] of [
  [32, 64],
  [16, 128],
  [8, 256],
  [4, 512],
]) {
  const shape = [N, h, h, c];
  const fShape = [3, 3, c, c];
  const geometry = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1] };
  row(
    `dX ${h}x${h}x${c} 3x3 s1`,
    (kernels, dy, f, dx) => kernels.conv2dBackpropInput(dy, shape, f, fShape, dx, shape, geometry),
    shape,
    fShape,
    shape,
    h,
    NCHWC_MIN_WIDTH.inputGradient,
  );
}
console.log(
  `sum: im2col ${totals.im2col.toFixed(1)} ms, NCHWc ${totals.nchwc.toFixed(1)} ms, shipped ${totals.shipped.toFixed(1)} ms; worst max rel diff ${worst.toExponential(1)}`,
);

// Can ONNX Runtime's NCHWc convolution (MLAS's direct kernels on channel-blocked data) run with a
// filter that is a graph input, not a constant? Its graph optimiser only rewrites Conv to the
// NCHWc ops for constant filters; here the graph is written with the contrib ops themselves
// (domain com.microsoft.nchwc: ReorderInput, Conv, ReorderOutput) and the filter is reordered
// inside the graph from TF.js's [fh, fw, Cin, Cout] to MLAS's blocked layouts:
//   Cin a multiple of the block B: [Cout/B, Cin/B, fh, fw, Bi, Bo] (MLAS's OIHWBiBo);
//   Cin < B (the 3-channel stem): NCHW input, filter [Cout/B, Cin, fh, fw, Bo] (OIHWBo).
// Each form is checked against the project's current graph (native.conv2d, im2col + SGEMM) and
// timed paired against it on ResNet-18's layer shapes at batch 16, in CPU time of this process.
// Run after `pnpm run build`:  node bench/nchwc-probe.mjs [--reps 7] [--threads 1]
import os from 'node:os';
import { arg } from './args.mjs';

const { loadOnnxRuntimeKernels, node, initializer, ONNX_FLOAT, ONNX_INT32, ONNX_INT64, onnxModel, valueInfo } =
  await import('../packages/kernels/dist/index.js');

const REPS = Number(arg('reps', '7'));
const THREADS = Number(arg('threads', '1'));
const native = loadOnnxRuntimeKernels({ threads: THREADS });
if (native === undefined) throw new Error('onnxruntime-node does not load here');

const OPSETS = { '': 13, 'com.microsoft.nchwc': 1 };
const NCHWC = 'com.microsoft.nchwc';
const i64 = (name, values) =>
  initializer(name, [values.length], ONNX_INT64, new Uint8Array(BigInt64Array.from(values, BigInt).buffer));

/** MLAS's block size: the channel count ReorderInput gives a 4-channel NHWC tensor. */
function blockSize() {
  const y = new Int32Array(1);
  native.graph(
    'nchwc-block',
    () =>
      onnxModel(
        'nchwc-block',
        [
          node('ReorderInput', ['A'], ['A_c'], { channels_last: 1 }, NCHWC),
          node('Shape', ['A_c'], ['shape']),
          node('Gather', ['shape', 'one'], ['c']),
          node('Cast', ['c'], ['Y'], { to: ONNX_INT32 }),
          i64('one', [1]),
          valueInfo(11, 'A', ONNX_FLOAT),
          valueInfo(12, 'Y', ONNX_INT32),
        ],
        OPSETS,
      ),
    { A: { data: new Float32Array(4), shape: [1, 1, 1, 4] } },
    { Y: { data: y, shape: [1] } },
  );
  return y[0];
}
const B = blockSize();
const up = (c) => Math.ceil(c / B) * B;

/**
 * NHWC A [N, H, W, Cin] and filter B [fh, fw, Cin, Cout] (TF.js) to NHWC Y through the NCHWc
 * kernels. `flip`: the filter is used rotated by 180 degrees with its channel axes swapped (the
 * stride-1 input gradient as a forward convolution: then Cin/Cout name the filter's own axes and
 * the convolution maps Cout channels to Cin).
 */
function nchwcModel({ fh, fw, cIn, cOut, strides, pads, flip, preblocked = false }) {
  const [inC, outC] = flip ? [cOut, cIn] : [cIn, cOut];
  const nodes = [];
  let w = 'B';
  if (preblocked) return preblockedModel({ fh, fw, inC, outC, strides, pads });
  if (flip) {
    nodes.push(
      node('Reshape', ['B', 'taps'], ['B_taps']), // [fh*fw, Cin, Cout]
      node('Slice', ['B_taps', 'rev_start', 'rev_end', 'rev_axis', 'rev_step'], ['B_rot']),
      node('Transpose', ['B_rot'], ['B_sw'], { perm: [0, 2, 1] }), // [fh*fw, Cout, Cin]: its [.., in, out]
      i64('taps', [fh * fw, cIn, cOut]),
      i64('rev_start', [-1]),
      i64('rev_end', [-(2n ** 63n) + 1n]),
      i64('rev_axis', [0]),
      i64('rev_step', [-1]),
    );
    w = 'B_sw';
  }
  const blockedIn = inC >= B;
  const [pi, po] = [blockedIn ? up(inC) : inC, up(outC)];
  if (pi !== inC || po !== outC) {
    nodes.push(
      node('Reshape', [w, 'hwio'], ['B_hwio']),
      node('Pad', ['B_hwio', 'wpads'], ['B_pad']),
      i64('hwio', [fh, fw, inC, outC]),
      i64('wpads', [0, 0, 0, 0, 0, 0, pi - inC, po - outC]),
    );
    w = 'B_pad';
  }
  if (blockedIn) {
    nodes.push(
      node('Reshape', [w, 'w6'], ['B_6']), // [fh, fw, Ci/B, Bi, Co/B, Bo]
      node('Transpose', ['B_6'], ['B_blk'], { perm: [4, 2, 0, 1, 3, 5] }), // [Co/B, Ci/B, fh, fw, Bi, Bo]
      i64('w6', [fh, fw, pi / B, B, po / B, B]),
      node('ReorderInput', ['A'], ['A_c'], { channels_last: 1 }, NCHWC),
    );
  } else {
    nodes.push(
      node('Reshape', [w, 'w5'], ['B_5']), // [fh, fw, Ci, Co/B, Bo]
      node('Transpose', ['B_5'], ['B_blk'], { perm: [3, 2, 0, 1, 4] }), // [Co/B, Ci, fh, fw, Bo]
      i64('w5', [fh, fw, pi, po / B, B]),
      node('Transpose', ['A'], ['A_c'], { perm: [0, 3, 1, 2] }),
    );
  }
  nodes.push(
    node('Reshape', ['B_blk', 'oihw'], ['W']),
    i64('oihw', [po, pi, fh, fw]),
    node(
      'Conv',
      ['A_c', 'W'],
      ['Y_c'],
      { kernel_shape: [fh, fw], strides: [...strides], dilations: [1, 1], pads: [...pads] },
      NCHWC,
    ),
    node('ReorderOutput', ['Y_c'], ['Y'], { channels: outC, channels_last: 1 }, NCHWC),
    valueInfo(11, 'A', ONNX_FLOAT),
    valueInfo(11, 'B', ONNX_FLOAT),
    valueInfo(12, 'Y', ONNX_FLOAT),
  );
  return onnxModel('nchwc-conv', nodes, OPSETS);
}

/** The same convolution with B fed already in the blocked layout: the kernels alone. */
function preblockedModel({ fh, fw, inC, outC, strides, pads }) {
  const blockedIn = inC >= B;
  return onnxModel(
    'nchwc-pre',
    [
      blockedIn
        ? node('ReorderInput', ['A'], ['A_c'], { channels_last: 1 }, NCHWC)
        : node('Transpose', ['A'], ['A_c'], { perm: [0, 3, 1, 2] }),
      node(
        'Conv',
        ['A_c', 'B'],
        ['Y_c'],
        { kernel_shape: [fh, fw], strides: [...strides], dilations: [1, 1], pads: [...pads] },
        NCHWC,
      ),
      node('ReorderOutput', ['Y_c'], ['Y'], { channels: outC, channels_last: 1 }, NCHWC),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'B', ONNX_FLOAT),
      valueInfo(12, 'Y', ONNX_FLOAT),
    ],
    OPSETS,
  );
}

let seed = 7;
const random = (n) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = seed / 2 ** 31 - 1;
  }
  return a;
};
const cpuMs = (fn) => {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function paired(oldForm, newForm) {
  oldForm();
  newForm();
  const a = [];
  const b = [];
  for (let r = 0; r < REPS; r++) {
    if (r % 2 === 0) {
      a.push(cpuMs(oldForm));
      b.push(cpuMs(newForm));
    } else {
      b.push(cpuMs(newForm));
      a.push(cpuMs(oldForm));
    }
  }
  return { old: median(a), now: median(b), ratio: median(a.map((x, i) => b[i] / x)) };
}
const maxRel = (a, b) => {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
};

console.log(`node ${process.version}, ${native.detail}, MLAS NCHWc block ${B}`);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus; CPU ms per call, medians of ${REPS} alternating pairs`,
);
console.log(
  'ResNet-18 layer (batch 16)              current  NCHWc  ratio  max rel diff  kernels alone (filter pre-blocked)',
);
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
  [32, 64, 128, 1, 2, [0, 0, 0, 0], 'shortcut'],
  [16, 128, 256, 1, 2, [0, 0, 0, 0], 'shortcut'],
  [8, 256, 512, 1, 2, [0, 0, 0, 0], 'shortcut'],
];
let sumOld = 0;
let sumNew = 0;
let worst = 0;
for (const [h, cIn, cOut, k, s, pads, what] of FORWARD) {
  const ho = Math.ceil(h / s);
  const xShape = [N, h, h, cIn];
  const fShape = [k, k, cIn, cOut];
  const yShape = [N, ho, ho, cOut];
  const x = random(xShape.reduce((p, d) => p * d));
  const f = random(fShape.reduce((p, d) => p * d));
  const yOld = new Float32Array(yShape.reduce((p, d) => p * d));
  const yNew = new Float32Array(yOld.length);
  const geometry = { strides: [s, s], dilations: [1, 1], pads };
  const key = `nchwc|${k}|${cIn}|${cOut}|${s}|${pads.join()}`;
  const current = () => native.conv2d(x, xShape, f, fShape, yOld, yShape, geometry);
  const nchwc = () =>
    native.graph(
      key,
      () => nchwcModel({ fh: k, fw: k, cIn, cOut, strides: [s, s], pads, flip: false }),
      { A: { data: x, shape: xShape }, B: { data: f, shape: fShape } },
      { Y: { data: yNew, shape: yShape } },
    );
  const t = paired(current, nchwc);
  const diff = maxRel(yNew, yOld);
  const pi = cIn >= B ? up(cIn) : cIn;
  const fBlk = new Float32Array(up(cOut) * pi * k * k);
  const kernelOnly = () =>
    native.graph(
      `${key}|pre`,
      () => nchwcModel({ fh: k, fw: k, cIn, cOut, strides: [s, s], pads, flip: false, preblocked: true }),
      { A: { data: x, shape: xShape }, B: { data: fBlk, shape: [up(cOut), pi, k, k] } },
      { Y: { data: yNew, shape: yShape } },
    );
  const pre = paired(current, kernelOnly);
  worst = Math.max(worst, diff);
  sumOld += t.old;
  sumNew += t.now;
  console.log(
    `fwd ${h}x${h}x${cIn}->${cOut} ${k}x${k} s${s} ${what}`.padEnd(38) +
      `${t.old.toFixed(2).padStart(8)} ${t.now.toFixed(2).padStart(6)} ${t.ratio.toFixed(2).padStart(6)} ${diff.toExponential(1).padStart(13)} ${pre.now.toFixed(2).padStart(8)}`,
  );
}
// The stride-1 input gradient: dX = conv(dY, rotated filter), against native.conv2dBackpropInput.
for (const [h, c] of [
  [32, 64],
  [16, 128],
  [8, 256],
  [4, 512],
]) {
  const shape = [N, h, h, c];
  const fShape = [3, 3, c, c];
  const dy = random(shape.reduce((p, d) => p * d));
  const f = random(fShape.reduce((p, d) => p * d));
  const dxOld = new Float32Array(dy.length);
  const dxNew = new Float32Array(dy.length);
  const geometry = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1] };
  const current = () => native.conv2dBackpropInput(dy, shape, f, fShape, dxOld, shape, geometry);
  const nchwc = () =>
    native.graph(
      `nchwc-flip|${c}`,
      () => nchwcModel({ fh: 3, fw: 3, cIn: c, cOut: c, strides: [1, 1], pads: [1, 1, 1, 1], flip: true }),
      { A: { data: dy, shape }, B: { data: f, shape: fShape } },
      { Y: { data: dxNew, shape } },
    );
  const t = paired(current, nchwc);
  const diff = maxRel(dxNew, dxOld);
  const fBlk = new Float32Array(f.length);
  const kernelOnly = () =>
    native.graph(
      `nchwc-flip|${c}|pre`,
      () => nchwcModel({ fh: 3, fw: 3, cIn: c, cOut: c, strides: [1, 1], pads: [1, 1, 1, 1], preblocked: true }),
      { A: { data: dy, shape }, B: { data: fBlk, shape: [c, c, 3, 3] } },
      { Y: { data: dxNew, shape } },
    );
  const pre = paired(current, kernelOnly);
  worst = Math.max(worst, diff);
  sumOld += t.old;
  sumNew += t.now;
  console.log(
    `dX ${h}x${h}x${c} 3x3 s1`.padEnd(38) +
      `${t.old.toFixed(2).padStart(8)} ${t.now.toFixed(2).padStart(6)} ${t.ratio.toFixed(2).padStart(6)} ${diff.toExponential(1).padStart(13)} ${pre.now.toFixed(2).padStart(8)}`,
  );
}
console.log(`sum: ${sumOld.toFixed(1)} -> ${sumNew.toFixed(1)} ms; worst max rel diff ${worst.toExponential(1)}`);

// ResNet-18's convolution gradients on native kernels (ONNX Runtime, 1 thread) and its batch norm,
// old form against new, paired, in CPU time of this process (user + system: a shared machine's
// neighbours move it far less than wall time):
//   filter gradient: im2col + one GEMM  vs  one graph of strided slices, a product per tap;
//   input gradient:  ConvTranspose                vs  Conv with the rotated filter (stride 1);
//   forward Conv: the filter to [Cout, Cin, fh, fw] by one 4-D transpose  vs  two single-axis ones;
//   1x1 stride-2 shortcuts, forward and input gradient: Conv / ConvTranspose  vs  NHWC products;
//   batch norm (training, value and gradients): tensor ops  vs  the two SIMD kernels.
// Run after `pnpm run build`:  node bench/resnet-kernels.mjs [--reps 7]
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { arg } from './args.mjs';
import { paired } from './paired.mjs';

const requireFromKernels = createRequire(new URL('../packages/kernels/package.json', import.meta.url));
const load = (name) => import(pathToFileURL(requireFromKernels.resolve(name)).href);
const tf = await load('@tensorflow/tfjs');
await load('@tensorflow/tfjs-backend-wasm');
const { loadOnnxRuntimeKernels, registerWasmTrainingKernels, node, ONNX_FLOAT, onnxModel, valueInfo } = await import(
  '../packages/kernels/dist/index.js'
);
const { createConv2DBackpropFilterKernel } = await import('../packages/kernels/dist/wasm/conv2d_backprop_filter.js');
const { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD } = await import('../packages/kernels/dist/index.js');
const { batchNormTraining } = await import('../packages/core/dist/index.js');

const REPS = Number(arg('reps', '7'));
const pairedRun = (oldForm, newForm) => paired(oldForm, newForm, REPS);
await tf.setBackend('wasm');
// The ONNX Runtime forms of the convolutions are what this compares (oneDNN's: bench/onednn-probe.mjs).
const native = loadOnnxRuntimeKernels({ threads: 1, convolution: 'onnxruntime' });
if (native === undefined) throw new Error('onnxruntime-node does not load here');
registerWasmTrainingKernels({ native });
const shipped = {
  Conv2D: tf.getKernel('Conv2D', 'wasm'),
  Transpose: tf.getKernel('Transpose', 'wasm'),
  BatchMatMul: tf.getKernel('BatchMatMul', 'wasm'),
};
const get = (name) => shipped[name];
const im2col = createConv2DBackpropFilterKernel(get, native, undefined, false);
const sliced = createConv2DBackpropFilterKernel(get, native);

const withKernel = (config, fn) => () => {
  tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
  tf.registerKernel(config);
  tf.tidy(fn);
};
const maxRel = (a, b) => {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
};

/**
 * The graphs before: ONNX Runtime's Conv or ConvTranspose between NHWC transposes, TF.js's filter
 * to [Cout, Cin, fh, fw] by one 4-D transpose (the input gradient of a 3x3 stride-1 'same'
 * convolution, or a 1x1 stride-2 shortcut).
 */
function previousModel(op, kernel, stride, outputPadding) {
  const pad = (kernel - 1) / 2;
  return onnxModel(
    `previous-${op}-${kernel}`,
    [
      node('Transpose', ['A'], ['A_nchw'], { perm: [0, 3, 1, 2] }),
      node('Transpose', ['B'], ['B_oihw'], { perm: [3, 2, 0, 1] }),
      node(op, ['A_nchw', 'B_oihw'], ['Y_nchw'], {
        strides: [stride, stride],
        pads: [pad, pad, pad, pad],
        kernel_shape: [kernel, kernel],
        ...(op === 'ConvTranspose' ? { output_padding: [outputPadding, outputPadding] } : {}),
      }),
      node('Transpose', ['Y_nchw'], ['Y'], { perm: [0, 2, 3, 1] }),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'B', ONNX_FLOAT),
      valueInfo(12, 'Y', ONNX_FLOAT),
    ],
    { '': 13 },
  );
}
const convTransposeModel = () => previousModel('ConvTranspose', 3, 1, 0);

console.log(`tfjs ${tf.version.tfjs}, node ${process.version}, ${native.detail}`);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(`CPU ms per call, medians of ${REPS} alternating pairs; ratio = median of new/old per pair`);
console.log(
  'ResNet-18 layer (batch 16)       dW im2col  dW sliced  ratio  max rel diff | dX ConvT  dX Conv  ratio  max rel diff',
);
const forward = [];
let totalOld = 0;
let totalNew = 0;
for (const [h, c] of [
  [32, 64],
  [16, 128],
  [8, 256],
  [4, 512],
]) {
  const x = tf.randomNormal([16, h, h, c], 0, 1, 'float32', 1);
  const dy = tf.randomNormal([16, h, h, c], 0, 1, 'float32', 2);
  const filter = tf.randomNormal([3, 3, c, c], 0, 1, 'float32', 3);
  const attrs = {
    strides: [1, 1],
    pad: 'same',
    dataFormat: 'NHWC',
    dimRoundingMode: undefined,
    filterShape: [3, 3, c, c],
  };
  const dW = () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs);
  const w = pairedRun(withKernel(im2col, dW), withKernel(sliced, dW));
  const values = (config) => {
    tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
    tf.registerKernel(config);
    const t = dW();
    const v = t.dataSync().slice();
    t.dispose();
    return v;
  };
  const wDiff = maxRel(values(sliced), values(im2col));

  const dyData = dy.dataSync();
  const fData = filter.dataSync();
  const out = new Float32Array(dyData.length);
  const outOld = new Float32Array(dyData.length);
  const shape = [16, h, h, c];
  const geometry = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1] };
  const dxOld = () =>
    native.graph(
      'convtranspose',
      convTransposeModel,
      { A: { data: dyData, shape }, B: { data: fData, shape: [3, 3, c, c] } },
      {
        Y: { data: outOld, shape },
      },
    );
  const dxNew = () => native.conv2dBackpropInput(dyData, shape, fData, [3, 3, c, c], out, shape, geometry);
  const d = pairedRun(dxOld, dxNew);
  const dDiff = maxRel(out, outOld);
  const xData = x.dataSync();
  const fwdOld = () =>
    native.graph(
      'previous-conv-3x3',
      () => previousModel('Conv', 3, 1, 0),
      { A: { data: xData, shape }, B: { data: fData, shape: [3, 3, c, c] } },
      { Y: { data: outOld, shape } },
    );
  const fwdNew = () => native.conv2d(xData, shape, fData, [3, 3, c, c], out, shape, geometry);
  const fw = pairedRun(fwdOld, fwdNew);
  const fwDiff = maxRel(out, outOld);
  forward.push(
    `16x${h}x${h}x${c}, 3x3 s1`.padEnd(33) +
      `${fw.old.toFixed(1).padStart(9)} ${fw.now.toFixed(1).padStart(9)} ${fw.ratio.toFixed(2).padStart(6)} ${fwDiff.toExponential(1).padStart(13)}`,
  );
  totalOld += w.old + d.old + fw.old;
  totalNew += w.now + d.now + fw.now;
  console.log(
    `16x${h}x${h}x${c}, 3x3 s1`.padEnd(33) +
      `${w.old.toFixed(1).padStart(9)} ${w.now.toFixed(1).padStart(11)} ${w.ratio.toFixed(2).padStart(6)} ${wDiff.toExponential(1).padStart(13)} |` +
      `${d.old.toFixed(1).padStart(9)} ${d.now.toFixed(1).padStart(8)} ${d.ratio.toFixed(2).padStart(6)} ${dDiff.toExponential(1).padStart(13)}`,
  );
  tf.dispose([x, dy, filter]);
}
console.log('\nforward Conv (filter layout by two single-axis transposes)  before  after  ratio  max rel diff');
for (const line of forward) console.log(line);
console.log(`sum over the four shapes, dW + dX + forward: ${totalOld.toFixed(1)} -> ${totalNew.toFixed(1)} ms`);

// ResNet-18's three 1x1 stride-2 shortcuts (batch 16): forward and input gradient.
console.log(
  '\n1x1 stride-2 shortcut (batch 16)   fwd Conv  fwd product  ratio  max rel diff | dX ConvT  dX product  ratio  max rel diff',
);
for (const [h, c] of [
  [32, 64],
  [16, 128],
  [8, 256],
]) {
  const [ho, co] = [h / 2, 2 * c];
  const xData = tf.randomNormal([16, h, h, c], 0, 1, 'float32', 8).dataSync();
  const dyData = tf.randomNormal([16, ho, ho, co], 0, 1, 'float32', 9).dataSync();
  const fData = tf.randomNormal([1, 1, c, co], 0, 1, 'float32', 10).dataSync();
  const [xShape, yShape, fShape] = [
    [16, h, h, c],
    [16, ho, ho, co],
    [1, 1, c, co],
  ];
  const geometry = { strides: [2, 2], dilations: [1, 1], pads: [0, 0, 0, 0] };
  const [y0, y1] = [new Float32Array(dyData.length), new Float32Array(dyData.length)];
  const fwdOld = () =>
    native.graph(
      'previous-conv-1x1',
      () => previousModel('Conv', 1, 2, 0),
      { A: { data: xData, shape: xShape }, B: { data: fData, shape: fShape } },
      { Y: { data: y0, shape: yShape } },
    );
  const fwdNew = () => native.conv2d(xData, xShape, fData, fShape, y1, yShape, geometry);
  const f = pairedRun(fwdOld, fwdNew);
  const fDiff = maxRel(y1, y0);
  const [d0, d1] = [new Float32Array(xData.length), new Float32Array(xData.length)];
  const dxOld = () =>
    native.graph(
      'previous-convt-1x1',
      () => previousModel('ConvTranspose', 1, 2, 1),
      { A: { data: dyData, shape: yShape }, B: { data: fData, shape: fShape } },
      { Y: { data: d0, shape: xShape } },
    );
  const dxNew = () => native.conv2dBackpropInput(dyData, yShape, fData, fShape, d1, xShape, geometry);
  const d = pairedRun(dxOld, dxNew);
  const dDiff = maxRel(d1, d0);
  console.log(
    `16x${h}x${h}x${c} -> ${co}`.padEnd(35) +
      `${f.old.toFixed(1).padStart(8)} ${f.now.toFixed(1).padStart(12)} ${f.ratio.toFixed(2).padStart(6)} ${fDiff.toExponential(1).padStart(13)} |` +
      `${d.old.toFixed(1).padStart(9)} ${d.now.toFixed(1).padStart(11)} ${d.ratio.toFixed(2).padStart(6)} ${dDiff.toExponential(1).padStart(13)}`,
  );
}

// Batch norm: forward and backward (upstream gradient w) of batchNorm(x), with and without the fused
// kernels. The wasm backend runs eagerly, so nothing is read back inside the timed calls.
console.log('\nbatch norm, training (batch 16)    tensor ops  fused  ratio  max rel diff (value, dx, dgamma, dbeta)');
const fusedConfigs = [BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD].map((name) => tf.getKernel(name, 'wasm'));
const setFused = (on) => {
  for (const config of fusedConfigs) {
    if (tf.getKernel(config.kernelName, 'wasm') !== undefined) tf.unregisterKernel(config.kernelName, 'wasm');
    if (on) tf.registerKernel(config);
  }
};
let bnOld = 0;
let bnNew = 0;
for (const [h, c, count] of [
  [32, 64, 5],
  [16, 128, 5],
  [8, 256, 5],
  [4, 512, 5],
]) {
  const x = tf.randomNormal([16, h, h, c], 0.5, 2, 'float32', 4);
  const w = tf.randomNormal([16, h, h, c], 0, 1, 'float32', 5);
  const gamma = tf.randomNormal([c], 1, 0.1, 'float32', 6);
  const beta = tf.randomNormal([c], 0, 0.1, 'float32', 7);
  const f = tf.valueAndGrads((xx, g, b) => batchNormTraining(xx, g, b, 1e-5));
  const run = (on) => () => {
    setFused(on);
    tf.tidy(() => {
      f([x, gamma, beta], w);
    });
  };
  const values = (on) => {
    setFused(on);
    return tf.tidy(() => {
      const { value, grads } = f([x, gamma, beta], w);
      return [value, ...grads].map((t) => t.dataSync().slice());
    });
  };
  const t = pairedRun(run(false), run(true));
  const a = values(true);
  const b = values(false);
  const diffs = a.map((v, i) => maxRel(v, b[i]).toExponential(1)).join(', ');
  bnOld += count * t.old;
  bnNew += count * t.now;
  console.log(
    `16x${h}x${h}x${c}`.padEnd(35) +
      `${t.old.toFixed(1).padStart(10)} ${t.now.toFixed(1).padStart(6)} ${t.ratio.toFixed(2).padStart(6)}  ${diffs}`,
  );
  tf.dispose([x, w, gamma, beta]);
}
setFused(true);
console.log(`ResNet-18's 20 batch norms (5 per width): ${bnOld.toFixed(1)} -> ${bnNew.toFixed(1)} ms`);

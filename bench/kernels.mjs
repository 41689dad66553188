// Times the wasm kernels we replace (packages/core/src/kernels/wasm), shipped vs ours.
// Run after `pnpm exec tsc -b packages/core`:  node bench/kernels.mjs
// Single process: the shipped kernels are timed first, then ours are registered and timed.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const requireFromCore = createRequire(new URL('../packages/core/package.json', import.meta.url));
const load = (name) => import(pathToFileURL(requireFromCore.resolve(name)).href);
const tf = await load('@tensorflow/tfjs');
await load('@tensorflow/tfjs-backend-wasm');
const { registerWasmTrainingKernels } = await import('../packages/core/dist/kernels/index.js');

await tf.setBackend('wasm');
if (tf.getBackend() !== 'wasm') throw new Error(`wasm backend did not start (got ${tf.getBackend()})`);

/** Median ms per call after warm-up; at least 5 calls and about 1 s. */
function timeMs(fn) {
  for (let i = 0; i < 2; i++) tf.tidy(() => { fn(); });
  const samples = [];
  const start = performance.now();
  while (samples.length < 5 || (performance.now() - start < 1000 && samples.length < 50)) {
    const t = performance.now();
    tf.tidy(() => { fn(); });
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

const rnd = (shape) => tf.randomNormal(shape, 0, 1, 'float32', 7);
const run = (name, inputs, attrs) => tf.engine().runKernel(name, inputs, attrs);

// ResNet-ish layer: batch 32, 32x32x16 -> 16 channels, 3x3, 'same'.
const x = rnd([32, 32, 32, 16]);
const dy1 = rnd([32, 32, 32, 16]);
const dy2 = rnd([32, 16, 16, 16]);
const convAttrs = (s) => ({ strides: s, pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined });
const mmA = rnd([256, 784]);
const mmB = rnd([784, 512]);
const mmAT = rnd([784, 256]);
const mmBT = rnd([512, 784]);
const table = 30522;
const updates = rnd([4096, 128]);
const ids = tf.randomUniform([4096], 0, table, 'int32', 7);
const bnScale = rnd([1, 1, 1, 16]);

const cases = [
  ['matMul 256x784x512 plain (yardstick)', () => tf.matMul(mmA, mmB)],
  ['matMul 256x784x512 transposeA', () => tf.matMul(mmAT, mmB, true, false)],
  ['matMul 256x784x512 transposeB', () => tf.matMul(mmA, mmBT, false, true)],
  ['matMul 256x784x512 transposeA+B', () => tf.matMul(mmAT, mmBT, true, true)],
  ['conv2d fwd 32x32x32x16 3x3 s1 (yardstick)', () => tf.conv2d(x, rnd([3, 3, 16, 16]), 1, 'same')],
  ['Conv2DBackpropFilter 3x3 s1', () => run('Conv2DBackpropFilter', { x, dy: dy1 }, { ...convAttrs(1), filterShape: [3, 3, 16, 16] })],
  ['Conv2DBackpropFilter 3x3 s2', () => run('Conv2DBackpropFilter', { x, dy: dy2 }, { ...convAttrs(2), filterShape: [3, 3, 16, 16] })],
  ['Conv2DBackpropInput 3x3 s1', () => run('Conv2DBackpropInput', { dy: dy1, filter: rnd([3, 3, 16, 16]) }, { ...convAttrs(1), inputShape: x.shape })],
  ['Conv2DBackpropInput 3x3 s2', () => run('Conv2DBackpropInput', { dy: dy2, filter: rnd([3, 3, 16, 16]) }, { ...convAttrs(2), inputShape: x.shape })],
  ['unsortedSegmentSum 4096 ids -> 30522x128', () => tf.unsortedSegmentSum(updates, ids, table)],
  ['tile [1,1,1,16] x [128,32,32,1] (BN grad)', () => tf.tile(bnScale, [128, 32, 32, 1])],
];

function measureAll() {
  return cases.map(([, fn]) => {
    try {
      return timeMs(fn);
    } catch (e) {
      return /not registered/.test(String(e)) ? 'missing' : `error: ${String(e).slice(0, 40)}`;
    }
  });
}

const shipped = measureAll();
registerWasmTrainingKernels();
const ours = measureAll();

const fmt = (v) => (typeof v === 'number' ? v.toFixed(2) : v);
const rows = cases.map(([name], i) => {
  const s = shipped[i];
  const o = ours[i];
  const ratio = typeof s === 'number' && typeof o === 'number' ? `${(s / o).toFixed(1)}x` : '-';
  return [name, fmt(s), fmt(o), ratio];
});
const header = ['case (wasm, 1 thread)', 'shipped ms', 'ours ms', 'speed-up'];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => String(r[c]).length)));
const line = (r) => r.map((v, c) => (c === 0 ? String(v).padEnd(widths[c]) : String(v).padStart(widths[c]))).join('  ');
console.log(`tfjs ${tf.version_core}, node ${process.version}`);
console.log(line(header));
for (const r of rows) console.log(line(r));

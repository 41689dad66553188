// Times the wasm kernels we replace (packages/kernels/src/wasm): shipped, ours in wasm, and
// ours on native kernels (ONNX Runtime, `kernels: 'onnxruntime'`).
// Run after `pnpm exec tsc -b packages/kernels packages/core`:  node bench/kernels.mjs
// Single process: the three kernel configs are swapped in and out of the registry, and each
// case is timed in alternating rounds (shipped, ours, native, shipped, ...) to even out noise.
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';

const requireFromKernels = createRequire(new URL('../packages/kernels/package.json', import.meta.url));
const load = (name) => import(pathToFileURL(requireFromKernels.resolve(name)).href);
const tf = await load('@tensorflow/tfjs');
await load('@tensorflow/tfjs-backend-wasm');
const { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } = await import('../packages/kernels/dist/index.js');
const { loadOnnxRuntimeKernels, softmaxCrossEntropy } = await import('../packages/core/dist/index.js');

await tf.setBackend('wasm');
if (tf.getBackend() !== 'wasm') throw new Error(`wasm backend did not start (got ${tf.getBackend()})`);

const ROUNDS = 3;

/**
 * Appends ms per call of `fn(prep())` to `samples`, after warm-up; at least 3 calls and about
 * 0.3 s. `prep` (untimed) makes fresh operands: XNNPACK caches packed weights per tensor, and
 * in training every product sees new ones.
 */
function sample([fn, prep], samples) {
  const once = () => {
    const inputs = prep?.();
    const t = performance.now();
    tf.tidy(() => {
      fn(inputs);
    });
    const ms = performance.now() - t;
    if (inputs !== undefined) tf.dispose(inputs);
    return ms;
  };
  for (let i = 0; i < 2; i++) once();
  const start = performance.now();
  for (let n = 0; n < 3 || (performance.now() - start < 300 && n < 30); n++) samples.push(once());
}

// The fastest call: on a shared machine, noise only ever adds time.
const fastest = (xs) => Math.min(...xs);

/** Installs a set of kernel configs (undefined: the kernel is absent in that set). */
function install(configs) {
  for (const [name, config] of configs) {
    if (tf.getKernel(name, 'wasm') !== undefined) tf.unregisterKernel(name, 'wasm');
    if (config !== undefined) tf.registerKernel(config);
  }
}

const rnd = (shape) => tf.randomNormal(shape, 0, 1, 'float32', 7);
const filter = rnd([3, 3, 16, 16]);
const filter1x1 = rnd([1, 1, 16, 16]);
const dwFilter = rnd([3, 3, 16, 1]);
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
// ResNet-18 layer 1 at batch 16, and the MLM head of BERT-mini (154 masked tokens, 30,522 classes).
const x64 = rnd([16, 32, 32, 64]);
const f64 = rnd([3, 3, 64, 64]);
const dy64 = rnd([16, 32, 32, 64]);
const mlmLogits = rnd([154, table]);
const mlmLabels = tf.randomUniform([154], 0, table, 'int32', 8);

// [name, fn(fresh), prep?]: `fresh` comes from prep, made before the clock starts.
const fresh = (t) => () => tf.add(t, 0);
const cases = [
  ['matMul 256x784x512 plain, cached B (yardstick)', () => tf.matMul(mmA, mmB)],
  ['matMul 256x784x512 plain, fresh B (yardstick)', (b) => tf.matMul(mmA, b), fresh(mmB)],
  ['matMul 256x784x512 transposeA, fresh B', (b) => tf.matMul(mmAT, b, true, false), fresh(mmB)],
  ['matMul 256x784x512 transposeB, fresh B', (b) => tf.matMul(mmA, b, false, true), fresh(mmBT)],
  ['matMul 256x784x512 transposeA+B, fresh B', (b) => tf.matMul(mmAT, b, true, true), fresh(mmBT)],
  ['conv2d fwd 32x32x32x16 3x3 s1 (yardstick)', () => tf.conv2d(x, filter, 1, 'same')],
  [
    'Conv2DBackpropFilter 3x3 s1',
    () => run('Conv2DBackpropFilter', { x, dy: dy1 }, { ...convAttrs(1), filterShape: [3, 3, 16, 16] }),
  ],
  [
    'Conv2DBackpropFilter 3x3 s2',
    () => run('Conv2DBackpropFilter', { x, dy: dy2 }, { ...convAttrs(2), filterShape: [3, 3, 16, 16] }),
  ],
  [
    'Conv2DBackpropFilter 1x1 s2 (shortcut)',
    () => run('Conv2DBackpropFilter', { x, dy: dy2 }, { ...convAttrs(2), filterShape: [1, 1, 16, 16] }),
  ],
  [
    'Conv2DBackpropInput 3x3 s1',
    () => run('Conv2DBackpropInput', { dy: dy1, filter }, { ...convAttrs(1), inputShape: x.shape }),
  ],
  [
    'Conv2DBackpropInput 3x3 s2',
    () => run('Conv2DBackpropInput', { dy: dy2, filter }, { ...convAttrs(2), inputShape: x.shape }),
  ],
  [
    'Conv2DBackpropInput 1x1 s2 (shortcut)',
    () => run('Conv2DBackpropInput', { dy: dy2, filter: filter1x1 }, { ...convAttrs(2), inputShape: x.shape }),
  ],
  [
    'DepthwiseConv2dNativeBackpropFilter 3x3 s1',
    () =>
      run(
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy: dy1 },
        { ...convAttrs(1), dilations: 1, filterShape: [3, 3, 16, 1] },
      ),
  ],
  [
    'DepthwiseConv2dNativeBackpropInput 3x3 s1',
    () =>
      run(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: dy1, filter: dwFilter },
        { ...convAttrs(1), dilations: 1, inputShape: x.shape },
      ),
  ],
  ['unsortedSegmentSum 4096 ids -> 30522x128', () => tf.unsortedSegmentSum(updates, ids, table)],
  ['tile [1,1,1,16] x [128,32,32,1] (BN grad)', () => tf.tile(bnScale, [128, 32, 32, 1])],
  ['conv2d fwd 16x32x32x64 3x3 (ResNet-18 layer 1)', () => tf.conv2d(x64, f64, 1, 'same')],
  [
    'Conv2DBackpropFilter 16x32x32x64 3x3',
    () => run('Conv2DBackpropFilter', { x: x64, dy: dy64 }, { ...convAttrs(1), filterShape: [3, 3, 64, 64] }),
  ],
  [
    'Conv2DBackpropInput 16x32x32x64 3x3',
    () => run('Conv2DBackpropInput', { dy: dy64, filter: f64 }, { ...convAttrs(1), inputShape: x64.shape }),
  ],
  [
    'softmax cross-entropy 154x30522, value and gradient',
    () => tf.grad((l) => softmaxCrossEntropy(l, mlmLabels))(mlmLogits),
  ],
  ['sum over rows 154x30522 (a bias gradient)', () => tf.sum(mlmLogits, 0)],
];

// Every kernel name any config touches, so that installing a config also removes what it lacks.
const NAMES = [
  ...WASM_TRAINING_KERNELS,
  'MrlSoftmaxCrossEntropy',
  'MrlSoftmaxCrossEntropyGrad',
  'MrlPrefixSoftmaxCrossEntropy',
  'MrlPrefixSoftmaxCrossEntropyGrad',
];
const snapshotAll = () => NAMES.map((name) => [name, tf.getKernel(name, 'wasm')]);
const shippedKernels = snapshotAll();
registerWasmTrainingKernels();
const ourKernels = snapshotAll();
const native = loadOnnxRuntimeKernels();
if (native !== undefined) registerWasmTrainingKernels({ native });
const nativeKernels = native === undefined ? null : snapshotAll();

/** Fastest ms per call per case under each config, or why it could not run. */
function measure(fn) {
  const configs = [shippedKernels, ourKernels, nativeKernels];
  const samples = configs.map(() => []);
  const errors = configs.map(() => undefined);
  for (let round = 0; round < ROUNDS; round++) {
    configs.forEach((config, c) => {
      if (config === null || errors[c] !== undefined) return;
      install(config);
      try {
        sample(fn, samples[c]);
      } catch (e) {
        errors[c] = /not registered/.test(String(e)) ? 'missing' : `error: ${String(e).slice(0, 40)}`;
      }
    });
  }
  return configs.map((config, c) => (config === null ? 'not installed' : (errors[c] ?? fastest(samples[c]))));
}

const results = cases.map(([, fn, prep]) => measure([fn, prep]));

const fmt = (v) => (typeof v === 'number' ? v.toFixed(2) : v);
const speedUp = (s, o) => (typeof s === 'number' && typeof o === 'number' ? `${(s / o).toFixed(1)}x` : '-');
const rows = cases.map(([name], i) => {
  const [s, o, n] = results[i];
  return [name, fmt(s), fmt(o), fmt(n), speedUp(s, o), speedUp(s, n)];
});
const header = [
  'case (wasm, 1 thread; fastest call)',
  'shipped ms',
  'ours ms',
  'native ms',
  'ours vs shipped',
  'native vs shipped',
];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => String(r[c]).length)));
const line = (r) => r.map((v, c) => (c === 0 ? String(v).padEnd(widths[c]) : String(v).padStart(widths[c]))).join('  ');
console.log(
  `tfjs ${tf.version_core}, node ${process.version}, load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cpus`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));

// Training speed against PyTorch, in one run: the same models, batch sizes and optimisers,
// trained step by step in mrl (TF.js wasm with native kernels) and in PyTorch (bench/torch_speed.py
// as a child process), both on the same number of threads (--threads), the two interleaved step by step so that a loaded machine slows both alike.
// Prints ms/step per model and the ratio, peak memory, and the Matryoshka head overhead (a step
// with every nesting dim / a step with the full dim only) in both frameworks.
//
// Usage (after `pnpm run build`):
//   node bench/speed.mjs [--models mlp,resnet18,vit,bert] [--steps 3] [--backend wasm]
//                        [--profile [--calls] [--by-shape]] [--no-torch] [--leak 1000] [--python /usr/bin/python3]
//                        [--mlm-head chunked|stacked] [--mlm-chunk 512] [--keep-tape] [--threads 1]
// --steps: timed steps per head for the big models (the MLP runs 10x as many);
// --profile: per-kernel times (tf.profile) of one MRL step per model; with --calls the slowest
//   calls, with --by-shape the time summed by kernel and input shapes;
// --leak N: N more MLP steps, then tensor count / bytes / rss at the start and end;
// --mlm-head chunked|stacked: BERT's tied head form (default chunked; see bench/mlm-head.mjs);
// --mlm-chunk N: vocabulary classes per chunk of the chunked head (default DEFAULT_VOCAB_CHUNK);
// --keep-tape: TF.js's own backward pass, which frees saved activations only at its end;
// --threads N: threads for both frameworks (default 1): ONNX Runtime's intra-op pool in mrl,
//   torch.set_num_threads(N) and OMP/OpenBLAS/MKL_NUM_THREADS=N in PyTorch; `all` = every core;
// --mem-detail: where mrl's rss goes, per model: the peak of the bytes TF.js holds in the wasm
//   heap (its malloc and free, counted), the wasm heap's size (it never shrinks) and the rest.
// --no-nchwc: every convolution on ONNX's Conv (im2col + SGEMM), none on MLAS's NCHWc kernels
//   (and none on oneDNN);
// --convolution onednn|onnxruntime: what runs the convolutions (default: oneDNN where its addon
//   is built, packages/kernels/native/build.sh);
// --matmul onednn|onnxruntime: what runs the products (default: oneDNN where its addon is built
//   with them, else MLAS's SGEMM);
// --chunked-head onednn|onnxruntime: what runs BERT's chunked Matryoshka MLM head (default: as the
//   products; bench/chunked-head-probe.mjs times it alone).
// --few-class-head onednn|onnxruntime: what runs the vision and MLP models' Matryoshka head (10
//   classes; default: the oneDNN addon where it is built).
// --batch-norm onednn|wasm, --sgd onednn|wasm: training-mode batch norm (with the ReLUs fused
//   around it) and the SGD-momentum and AdamW updates on the addon's threads, or on the wasm backend's
//   SIMD kernels (one thread); default: the addon where it is built.
// --ort-threads N: threads of ONNX Runtime's own sessions (default --threads); the addon's keep --threads.
import { spawn } from 'node:child_process';
import { execSync } from 'node:child_process';
import os from 'node:os';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  AdamWOptimizer,
  ClassificationObjective,
  createRandom,
  defaultNestingDims,
  freeDuringBackward,
  initBackend,
  MatryoshkaLoss,
  MlpEncoder,
  SgdOptimizer,
  SharedHead,
} from '@mrl/core';
import { createVisionEncoder } from '@mrl/vision';
import { BertEncoder, bertConfig, MlmModel, TiedMlmObjective } from '@mrl/text';
import { arg } from './args.mjs';
import { applyKernelFlags } from './kernel-flags.mjs';

const flag = (name) => process.argv.includes(`--${name}`);
const MODELS = (arg('models', 'mlp,resnet18,vit,bert') ?? '').split(',').filter(Boolean);
const STEPS = Number(arg('steps', '3'));
const PROFILE = flag('profile');
// --by-shape: with --profile, kernel time summed by kernel and input shapes (the first 40 rows).
const BY_SHAPE_ROWS = 40;
const TORCH = !flag('no-torch');
const LEAK = Number(arg('leak', '0'));
const PYTHON = arg('python', '/usr/bin/python3');
const THREADS = arg('threads', '1') === 'all' ? os.availableParallelism() : Number(arg('threads', '1'));
const backend = await initBackend(arg('backend', 'wasm'), { kernels: arg('kernels', 'auto'), threads: THREADS });
if (flag('keep-tape')) freeDuringBackward(false);
applyKernelFlags(backend, THREADS);

// Batch sizes: the MLP as in ENGINE.md; the big models small enough for a 2-core machine.
const SPECS = {
  mlp: { batch: 256, steps: 40 * STEPS, what: 'MLP 784-512-512, head 512->10, AdamW' },
  resnet18: { batch: 16, steps: STEPS, what: 'ResNet-18 CIFAR 32x32x3, d=512, head ->10, SGD+momentum' },
  vit: { batch: 16, steps: STEPS, what: 'ViT-tiny patch4 32x32x3 (192 wide, 12 deep, 3 heads), head ->10, AdamW' },
  bert: {
    batch: 8,
    seq: 128,
    steps: STEPS,
    what: 'BERT-mini (256, 4 layers, 4 heads) MLM, seq 128, 15% masked, tied head over 30522, AdamW',
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (bytes) => bytes / 2 ** 20;
/**
 * Median of the ratios of paired samples (a[i] / b[i]). Steps of a pair run back to back, so the
 * machine's slow drift (other tenants, frequency) cancels in each ratio; the median of the
 * separate medians does not have that property.
 */
const pairedRatio = (a, b) => median(a.slice(0, Math.min(a.length, b.length)).map((x, i) => x / b[i]));

/** A PyTorch child speaking torch_speed.py's line protocol. */
function startTorch() {
  const script = fileURLToPath(new URL('./torch_speed.py', import.meta.url));
  const child = spawn(PYTHON, [script], {
    env: {
      ...process.env,
      MRL_TORCH_THREADS: String(THREADS),
      OMP_NUM_THREADS: String(THREADS),
      OPENBLAS_NUM_THREADS: String(THREADS),
      MKL_NUM_THREADS: String(THREADS),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.(JSON.parse(line)));
  const ask = (msg) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.stdin.write(`${JSON.stringify(msg)}\n`);
    });
  return { ask, close: () => child.stdin.end() };
}

/** mrl's side of one model: a step function per head ('mrl': every nesting dim, 'plain': d only). */
function buildCase(name, spec, random) {
  const n = spec.batch;
  const labelsOf = (count, classes, from = 0) =>
    tf.tensor1d(
      Array.from({ length: count }, (_, i) => from + ((i * 7919) % (classes - from))),
      'int32',
    );
  let encoder;
  let losses;
  let input;
  let extraVars = new Map();
  let runLoss;
  if (name === 'bert') {
    const config = bertConfig('bert-mini', { vocabSize: 30522 });
    encoder = new BertEncoder(config, random);
    const d = config.embeddingDim;
    const t = spec.seq;
    const chunk = arg('mlm-chunk', undefined);
    const objective = new TiedMlmObjective(encoder.tokenEmbedding, {
      head: arg('mlm-head', 'chunked'),
      ...(chunk === undefined ? {} : { chunk: Number(chunk) }),
    });
    const ids = tf.tensor2d(
      Array.from({ length: n * t }, (_, i) => 5 + ((i * 104729) % 30517)),
      [n, t],
      'int32',
    );
    const attentionMask = tf.ones([n, t], 'int32');
    const positions = Array.from({ length: n * t }, (_, i) => i).filter((i) => (i * 2654435761) % 100 < 15);
    spec.positions = positions;
    const batch = {
      input: { ids, attentionMask },
      positions: tf.tensor1d(positions, 'int32'),
      target: { labels: labelsOf(positions.length, 30522, 5) },
      size: n,
    };
    const models = {
      mrl: new MlmModel(encoder, new MatryoshkaLoss(objective, { embeddingDim: d })),
      plain: new MlmModel(encoder, new MatryoshkaLoss(objective, { embeddingDim: d, dims: [d] })),
    };
    extraVars = objective.variables();
    runLoss = (head) => models[head].loss(batch, random).total;
    input = batch;
  } else {
    let d;
    if (name === 'mlp') {
      d = 512;
      encoder = new MlpEncoder({ architecture: 'mlp', embeddingDim: d, inputDim: 784, hidden: [512] }, random);
      input = tf.randomNormal([n, 784], 0, 1, 'float32', 3);
    } else {
      encoder = createVisionEncoder(name === 'resnet18' ? 'resnet18-cifar' : 'vit-tiny-patch4', {}, random);
      d = encoder.embeddingDim;
      input = tf.randomNormal([n, 32, 32, 3], 0, 1, 'float32', 3);
    }
    const head = new SharedHead(d, 10, random);
    const labels = labelsOf(n, 10);
    losses = {
      mrl: new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d }),
      plain: new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d, dims: [d] }),
    };
    extraVars = head.variables();
    runLoss = (head) => losses[head].compute(encoder.encode(input, true), { labels }).total;
  }
  const variables = new Map([
    ...[...encoder.variables()].map(([k, v]) => [`encoder/${k}`, v]),
    ...[...extraVars].map(([k, v]) => [`head/${k}`, v]),
  ]);
  const trainable = new Map([...variables].filter(([, v]) => v.trainable));
  const varList = [...trainable.values()];
  const optimizer =
    name === 'resnet18'
      ? new SgdOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 })
      : new AdamWOptimizer({ type: 'adamw', lr: 1e-4, weightDecay: 0.01 });
  const lr = name === 'resnet18' ? 0.01 : 1e-4;
  const params = varList.reduce((s, v) => s + v.size, 0);
  const step = (head) => {
    const { value, grads } = tf.variableGrads(() => runLoss(head), varList);
    const named = new Map([...trainable].map(([k, v]) => [k, grads[v.name]]));
    optimizer.apply(trainable, named, lr);
    const loss = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };
  // After its rows, a model's tensors go, as PyTorch's child drops its model for the next one:
  // otherwise the next model's rss would include this one's weights and optimiser state.
  const dispose = () => {
    optimizer.dispose?.();
    tf.dispose([...variables.values()]);
    tf.dispose(input);
  };
  return { step, params, dispose, dims: defaultNestingDims(name === 'bert' ? 256 : encoder.embeddingDim) };
}

function machine() {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    model = execSync("lscpu | sed -n 's/^Model name: *//p'").toString().trim() || model;
  } catch {}
  return `${model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
}

const torch = TORCH ? startTorch() : null;
const torchInfo = torch === null ? null : await torch.ask({ cmd: 'info' });
console.log(`# mrl vs PyTorch training speed`);
console.log(`command: node bench/speed.mjs ${process.argv.slice(2).join(' ')}`);
console.log(
  `machine: ${machine()}; load average at start: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(`mrl: TF.js ${tf.version.tfjs}, backend ${tf.getBackend()} (${backend.detail}), Node ${process.version}`);
if (torchInfo !== null)
  console.log(
    `PyTorch ${torchInfo.torch}, ${torchInfo.threads} thread${torchInfo.threads === 1 ? '' : 's'}, BLAS loaded: ${torchInfo.blas.join(', ') || 'none found'}`,
  );

// --mem-detail: count the wasm backend's allocations. Emscripten binds `_malloc`/`_free` to the
// module on first call, so one call each comes first; TF.js looks them up on each use.
const heap = { live: 0, peak: 0 };
if (flag('mem-detail') && tf.getBackend() === 'wasm') {
  const wasm = tf.backend().wasm;
  wasm._free(wasm._malloc(8));
  const [malloc, free, sizes] = [wasm._malloc, wasm._free, new Map()];
  wasm._malloc = (n) => {
    const p = malloc(n);
    sizes.set(p, n);
    heap.live += n;
    heap.peak = Math.max(heap.peak, heap.live);
    return p;
  };
  wasm._free = (p) => {
    heap.live -= sizes.get(p) ?? 0;
    sizes.delete(p);
    return free(p);
  };
}
const memDetail = (name, rss) => {
  if (!flag('mem-detail')) return;
  const wasmHeap = tf.getBackend() === 'wasm' ? tf.backend().wasm.HEAPU8.buffer.byteLength : 0;
  console.log(
    `  memory of ${name}: peak rss ${mb(rss).toFixed(0)} MiB; TF.js's wasm allocations: peak ${mb(heap.peak).toFixed(0)} MiB, now ${mb(heap.live).toFixed(0)}; wasm heap ${mb(wasmHeap).toFixed(0)} MiB; rss now ${mb(process.memoryUsage().rss).toFixed(0)} MiB, of which outside the wasm heap ${mb(process.memoryUsage().rss - wasmHeap).toFixed(0)}`,
  );
  heap.peak = heap.live;
};

const rows = [];
for (const name of MODELS) {
  const spec = SPECS[name];
  if (spec === undefined) throw new Error(`unknown model '${name}'; known: ${Object.keys(SPECS).join(', ')}`);
  const ours = buildCase(name, spec, createRandom(1));
  const py =
    torch === null
      ? null
      : await torch.ask({ cmd: 'init', model: name, batch: spec.batch, seq: spec.seq, positions: spec.positions });
  const times = { mrl: [], plain: [], torchMrl: [], torchPlain: [] };
  // CPU time (user + system, every thread of the process) of the same steps: on a shared machine
  // it moves far less with the neighbours than wall time; on one thread it is the step's work.
  const cpu = { mrl: [], plain: [], torchMrl: [] };
  let rss = 0;
  let torchRss = 0;
  const warm = name === 'mlp' ? 3 : 1;
  for (let i = 0; i < warm; i++) {
    for (const head of ['mrl', 'plain']) {
      ours.step(head);
      if (torch !== null) await torch.ask({ cmd: 'step', head });
    }
  }
  for (let i = 0; i < spec.steps; i++) {
    // Alternate which framework and head go first, so that neither always follows the other.
    const heads = i % 2 === 0 ? ['mrl', 'plain'] : ['plain', 'mrl'];
    for (const head of heads) {
      const runOurs = () => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        ours.step(head);
        times[head].push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu[head].push((c.user + c.system) / 1000);
        rss = Math.max(rss, process.memoryUsage().rss);
      };
      const runTorch = async () => {
        if (torch === null) return;
        const r = await torch.ask({ cmd: 'step', head });
        times[head === 'mrl' ? 'torchMrl' : 'torchPlain'].push(r.ms);
        if (head === 'mrl') cpu.torchMrl.push(r.cpu_ms);
        torchRss = Math.max(torchRss, r.maxrss_mb);
      };
      if (i % 2 === 0) {
        runOurs();
        await runTorch();
      } else {
        await runTorch();
        runOurs();
      }
    }
  }
  // One more MRL step under the profiler: peak bytes of the step and per-kernel times.
  const info = await tf.profile(() => {
    ours.step('mrl');
  });
  const row = {
    name,
    batch: spec.batch,
    what: spec.what,
    params: ours.params,
    torchParams: py?.params,
    ours: median(times.mrl),
    torch: median(times.torchMrl),
    oursPlain: median(times.plain),
    torchPlain: median(times.torchPlain),
    pairedRatio: pairedRatio(times.mrl, times.torchMrl),
    oursCpu: median(cpu.mrl),
    torchCpu: median(cpu.torchMrl),
    pairedCpuRatio: pairedRatio(cpu.mrl, cpu.torchMrl),
    pairedHead: pairedRatio(times.mrl, times.plain),
    oursPlainCpu: median(cpu.plain),
    pairedHeadCpu: pairedRatio(cpu.mrl, cpu.plain),
    pairedTorchHead: pairedRatio(times.torchMrl, times.torchPlain),
    rss: mb(rss),
    tfPeak: mb(info.peakBytes),
    tfKept: mb(tf.memory().numBytes),
    torchRss,
  };
  rows.push(row);
  console.log(
    `${name}: mrl ${row.ours.toFixed(1)} ms/step, torch ${row.torch.toFixed(1)} ms/step, ratio ${(row.ours / row.torch).toFixed(2)}; ` +
      `paired ratio ${row.pairedRatio.toFixed(2)}; cpu ms mrl ${row.oursCpu.toFixed(1)} torch ${row.torchCpu.toFixed(1)} (paired ratio ${row.pairedCpuRatio.toFixed(2)}); head overhead mrl ${(row.ours / row.oursPlain).toFixed(3)}x (paired ${row.pairedHead.toFixed(3)}; cpu ${(row.oursCpu / row.oursPlainCpu).toFixed(3)}x, paired ${row.pairedHeadCpu.toFixed(3)}) torch ${(row.torch / row.torchPlain).toFixed(3)}x; params ${row.params} / ${row.torchParams}; ` +
      `samples mrl [${times.mrl.map((t) => t.toFixed(0)).join(' ')}] torch [${times.torchMrl.map((t) => t.toFixed(0)).join(' ')}]`,
  );
  memDetail(name, rss);
  if (PROFILE) {
    const byKernel = new Map();
    for (const k of info.kernels) {
      if (tf.getKernel(k.name, tf.getBackend()) === undefined) continue; // op scopes, not kernels
      const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      e.calls += 1;
      byKernel.set(k.name, e);
    }
    const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
    console.log(`  kernels of one MRL step (${total.toFixed(0)} ms in kernels):`);
    for (const [k, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 14)) {
      console.log(
        `    ${k.padEnd(28)} ${e.ms.toFixed(1).padStart(8)} ms  ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${e.calls} calls`,
      );
    }
    if (flag('by-shape')) {
      const byShape = new Map();
      for (const k of info.kernels) {
        if (typeof k.kernelTimeMs !== 'number' || tf.getKernel(k.name, tf.getBackend()) === undefined) continue;
        const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
        const e = byShape.get(key) ?? { ms: 0, calls: 0 };
        e.ms += k.kernelTimeMs;
        e.calls += 1;
        byShape.set(key, e);
      }
      console.log('  kernels by input shapes:');
      for (const [key, e] of [...byShape].sort((a, b) => b[1].ms - a[1].ms).slice(0, BY_SHAPE_ROWS)) {
        console.log(`      ${e.ms.toFixed(1).padStart(7)} ms  ${String(e.calls).padStart(3)} calls  ${key}`);
      }
    }
    if (flag('calls')) {
      for (const k of [...info.kernels]
        .filter((k) => typeof k.kernelTimeMs === 'number')
        .sort((a, b) => b.kernelTimeMs - a.kernelTimeMs)
        .slice(0, 12)) {
        console.log(
          `      ${k.name} ${k.kernelTimeMs.toFixed(1)} ms  in ${JSON.stringify(k.inputShapes)} out ${JSON.stringify(k.outputShapes)}`,
        );
      }
    }
  }
  if (name === 'mlp' && LEAK > 0) {
    const sampleMem = (step) => ({
      step,
      tensors: tf.memory().numTensors,
      bytes: tf.memory().numBytes,
      rss: mb(process.memoryUsage().rss),
    });
    const marks = [];
    for (let i = 1; i <= LEAK; i++) {
      ours.step(i % 2 ? 'mrl' : 'plain');
      if (i === 10 || i === LEAK || i % 250 === 0) marks.push(sampleMem(i));
    }
    console.log(`  memory over ${LEAK} more MLP steps (tensors / MiB held by tf / rss MiB):`);
    for (const m of marks)
      console.log(
        `    step ${String(m.step).padStart(5)}: ${m.tensors} / ${mb(m.bytes).toFixed(1)} / ${m.rss.toFixed(0)}`,
      );
    const first = marks[0];
    const last = marks[marks.length - 1];
    console.log(
      `    growth from step ${first.step} to ${last.step}: ${last.tensors - first.tensors} tensors, ${(mb(last.bytes - first.bytes)).toFixed(2)} MiB tf, ${(last.rss - first.rss).toFixed(0)} MiB rss`,
    );
  }
  ours.dispose();
}
torch?.close();

const f = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
console.log(
  `\nload average at end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log('(ratios: of the medians / median of the ratios of back-to-back pairs)');
console.log(
  '| model | batch | threads | mrl ms/step | PyTorch ms/step | ratio | mrl cpu ms/step | PyTorch cpu ms/step | cpu ratio | MRL/plain head, mrl | MRL/plain head cpu, mrl | MRL/plain head, PyTorch | mrl rss MiB (peak) | mrl tf peak MiB in step | PyTorch maxrss MiB |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.batch} | ${THREADS} | ${f(r.ours)} | ${f(r.torch)} | ${f(r.ours / r.torch, 2)} / ${f(r.pairedRatio, 2)} | ${f(r.oursCpu)} | ${f(r.torchCpu)} | ${f(r.oursCpu / r.torchCpu, 2)} / ${f(r.pairedCpuRatio, 2)} | ${f(r.ours / r.oursPlain, 3)} / ${f(r.pairedHead, 3)} | ${f(r.oursCpu / r.oursPlainCpu, 3)} / ${f(r.pairedHeadCpu, 3)} | ${f(r.torch / r.torchPlain, 3)} / ${f(r.pairedTorchHead, 3)} | ${f(r.rss)} | ${f(r.tfPeak)} | ${f(r.torchRss)} |`,
  );
}

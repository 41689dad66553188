// The GPU check's training run: a few Matryoshka training steps of the MLP, ResNet-18, ViT-tiny
// and BERT-mini (bench/speed.mjs's models, batch sizes and optimisers) on one backend (webgpu) and
// then on a reference backend (cpu or wasm), from the same initial weights and batches; prints
// the loss of every step on both, ms/step, and whether the losses agree. Exit 1 when they do not.
//
// In the repository (after pnpm run build):
//   node scripts/gpu-check/check.mjs [--backend webgpu] [--reference cpu] [--models mlp,resnet18,vit,bert]
//                                    [--steps 3] [--tolerance 1e-3] [--batch-scale 1] [--json out.json]
// In the pack, run.sh runs the bundled copy of this file (pack.sh builds it).
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  AdamWOptimizer,
  ClassificationObjective,
  createRandom,
  initBackend,
  MatryoshkaLoss,
  MlpEncoder,
  MrlError,
  SgdOptimizer,
  SharedHead,
  writeFileAtomically,
} from '@mrl/core';
import { createVisionEncoder } from '../../packages/vision/dist/models/registry.js';
import { BertEncoder, bertConfig } from '../../packages/text/dist/bert.js';
import { MlmModel, TiedMlmObjective } from '../../packages/text/dist/mlm.js';
import { maxRelativeDiff, parseArgs, SPECS, USAGE } from './args.mjs';

/** One model's training step on the active backend; every tensor it makes is disposed. */
function buildCase(name, batch, seq) {
  const random = createRandom(1);
  const made = [];
  const keep = (t) => {
    made.push(t);
    return t;
  };
  const labelsOf = (count, classes, from = 0) =>
    keep(
      tf.tensor1d(
        Array.from({ length: count }, (_, i) => from + ((i * 7919) % (classes - from))),
        'int32',
      ),
    );
  // Inputs from our seeded generator: the same numbers on every backend.
  const data = createRandom(3);
  const normal = (shape) =>
    keep(
      tf.tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * data() - 1),
        shape,
      ),
    );
  let encoder;
  let extraVars;
  let runLoss;
  if (name === 'bert') {
    const config = bertConfig('bert-mini', { vocabSize: 30522 });
    encoder = new BertEncoder(config, random);
    const objective = new TiedMlmObjective(encoder.tokenEmbedding);
    const ids = keep(
      tf.tensor2d(
        Array.from({ length: batch * seq }, (_, i) => 5 + ((i * 104729) % 30517)),
        [batch, seq],
        'int32',
      ),
    );
    const attentionMask = keep(tf.ones([batch, seq], 'int32'));
    const positions = Array.from({ length: batch * seq }, (_, i) => i).filter((i) => (i * 2654435761) % 100 < 15);
    const input = {
      input: { ids, attentionMask },
      positions: keep(tf.tensor1d(positions, 'int32')),
      target: { labels: labelsOf(positions.length, 30522, 5) },
      size: batch,
    };
    const model = new MlmModel(encoder, new MatryoshkaLoss(objective, { embeddingDim: config.embeddingDim }));
    extraVars = objective.variables();
    runLoss = () => model.loss(input, random).total;
  } else {
    let d;
    let input;
    if (name === 'mlp') {
      d = 512;
      encoder = new MlpEncoder({ architecture: 'mlp', embeddingDim: d, inputDim: 784, hidden: [512] }, random);
      input = normal([batch, 784]);
    } else {
      encoder = createVisionEncoder(name === 'resnet18' ? 'resnet18-cifar' : 'vit-tiny-patch4', {}, random);
      d = encoder.embeddingDim;
      input = normal([batch, 32, 32, 3]);
    }
    const head = new SharedHead(d, 10, random);
    const labels = labelsOf(batch, 10);
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: d });
    extraVars = head.variables();
    runLoss = () => loss.compute(encoder.encode(input, true), { labels }).total;
  }
  const variables = new Map([
    ...[...encoder.variables()].map(([k, v]) => [`encoder/${k}`, v]),
    ...[...extraVars].map(([k, v]) => [`head/${k}`, v]),
  ]);
  const trainable = new Map([...variables].filter(([, v]) => v.trainable));
  const varList = [...trainable.values()];
  const sgd = name === 'resnet18';
  const optimizer = sgd
    ? new SgdOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 })
    : new AdamWOptimizer({ type: 'adamw', lr: 1e-4, weightDecay: 0.01 });
  const lr = sgd ? 0.01 : 1e-4;
  return {
    params: varList.reduce((s, v) => s + v.size, 0),
    /** One step; resolves to its loss, read back asynchronously (webgpu in Node cannot read synchronously). */
    async step() {
      const { value, grads } = tf.variableGrads(runLoss, varList);
      const named = new Map([...trainable].map(([k, v]) => [k, grads[v.name]]));
      optimizer.apply(trainable, named, lr);
      const loss = (await value.data())[0];
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    },
    dispose() {
      optimizer.dispose();
      tf.dispose([...made, ...variables.values()]);
    },
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * One more step under tf.profile: every kernel it ran, summed by name. On webgpu the kernel times
 * come from timestamp queries (the adapter's `timestamp-query` feature; 0 without it), and each
 * kernel is submitted alone, so the profiled step's wall time is not a step's time.
 */
async function profileStep(c, top) {
  const info = await tf.profile(async () => {
    await c.step();
  });
  const byName = new Map();
  let deviceMs = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' && Number.isFinite(k.kernelTimeMs) ? k.kernelTimeMs : 0;
    deviceMs += ms;
    const row = byName.get(k.name) ?? { name: k.name, count: 0, ms: 0 };
    row.count++;
    row.ms += ms;
    byName.set(k.name, row);
  }
  const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms || b.count - a.count);
  return { kernelCount: info.kernels.length, deviceMs, peakBytes: info.peakBytes, top: kernels.slice(0, top) };
}

function printProfile(backend, name, result) {
  const p = result.profile;
  const share = p.deviceMs / result.msPerStep;
  console.log(
    `  profile ${backend} ${name}: ${p.kernelCount} kernels a step, device time ${p.deviceMs.toFixed(1)} ms ` +
      `(${(100 * share).toFixed(0)}% of ${result.msPerStep.toFixed(1)} ms/step), peak ${(p.peakBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  console.log(`    ${p.top.map((k) => `${k.name} ${k.ms.toFixed(2)} ms x${k.count}`).join(', ')}`);
}

/** Trains every model `steps` steps on `backend`; the first step (shader compilation, warm-up) is not timed. */
async function runAll(backend, options) {
  const info = await initBackend(backend, backend === 'wasm' ? { threads: os.availableParallelism() } : {});
  const flags = Object.entries(options.tfFlags);
  for (const [name, value] of flags) {
    try {
      tf.env().set(name, value);
    } catch (error) {
      console.error(`--tf-flags: ${name}: ${error.message} (flags of the webgpu backend start with WEBGPU_)`);
      process.exit(2);
    }
  }
  if (flags.length > 0) console.log(`${backend}: TF.js flags ${flags.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const results = {};
  for (const name of options.models) {
    const spec = SPECS[name];
    const batch = Math.max(1, Math.round(spec.batch * options.batchScale));
    const c = buildCase(name, batch, spec.seq);
    const losses = [];
    const ms = [];
    const cpuMs = [];
    for (let i = 0; i < options.steps; i++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      losses.push(await c.step());
      ms.push(performance.now() - t0);
      const c1 = process.cpuUsage(c0);
      cpuMs.push((c1.user + c1.system) / 1000);
    }
    const result = {
      batch,
      params: c.params,
      losses,
      msPerStep: median(ms.slice(1)),
      firstStepMs: ms[0],
      // This process's CPU time (every thread): near ms/step when the step waits on the CPU side
      // (recording and submitting commands), far below it when it waits on the device.
      cpuMsPerStep: median(cpuMs.slice(1)),
    };
    if (options.profile > 0 && backend === options.backend) result.profile = await profileStep(c, options.profile);
    c.dispose();
    results[name] = result;
    console.log(
      `${backend.padEnd(6)} ${name.padEnd(8)} batch ${String(batch).padStart(3)}: losses ${losses.map((l) => l.toFixed(6)).join(' ')}; ` +
        `${result.msPerStep.toFixed(1)} ms/step, cpu ${result.cpuMsPerStep.toFixed(1)} ms/step (first step ${ms[0].toFixed(0)} ms)`,
    );
    if (result.profile !== undefined) printProfile(backend, name, result);
  }
  return { backend, detail: info.detail, results };
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
  if (options.help) {
    console.log(USAGE);
    return;
  }
  console.log(
    `# mrl GPU check: ${options.models.join(', ')}; ${options.steps} steps on ${options.backend}` +
      (options.reference === 'none' ? '' : ` and on ${options.reference}`) +
      `; Node ${process.version}, TF.js ${tf.version.tfjs}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.availableParallelism()}`,
  );
  let main;
  try {
    // The device backend first: starting it a second time in one process would open a second device.
    main = await runAll(options.backend, options);
  } catch (error) {
    if (MrlError.is(error)) {
      console.error(`${options.backend}: ${error.message}${error.fix === undefined ? '' : ` ${error.fix}`}`);
      process.exit(3);
    }
    throw error;
  }
  const reference = options.reference === 'none' ? undefined : await runAll(options.reference, options);
  // PyTorch CUDA timings of the same models (torch_cuda.py's JSON lines), when run.sh made them.
  const torch = new Map();
  if (options.torch !== undefined && existsSync(options.torch)) {
    for (const line of readFileSync(options.torch, 'utf8').split('\n').filter(Boolean)) {
      const row = JSON.parse(line);
      if (row.model !== undefined) torch.set(row.model, row);
    }
  }
  const torchDevice = [...torch.values()][0];
  console.log(`\n${options.backend}: ${main.detail}`);
  if (reference !== undefined) console.log(`${reference.backend}: ${reference.detail}`);
  if (torchDevice !== undefined) console.log(`PyTorch ${torchDevice.torch} on ${torchDevice.device}`);
  console.log(
    `\n| model | batch | ${options.backend} ms/step | ${options.reference} ms/step | PyTorch CUDA ms/step | max relative loss diff | within ${options.tolerance} |`,
  );
  console.log('|---|---|---|---|---|---|---|');
  let failed = false;
  const rows = [];
  for (const name of options.models) {
    const ours = main.results[name];
    const ref = reference?.results[name];
    const diff = ref === undefined ? Number.NaN : maxRelativeDiff(ours.losses, ref.losses);
    const ok = ref === undefined ? ours.losses.every(Number.isFinite) : diff <= options.tolerance;
    if (!ok) failed = true;
    const py = torch.get(name);
    rows.push({ model: name, batch: ours.batch, ours, reference: ref, torch: py, maxRelativeDiff: diff, ok });
    console.log(
      `| ${name} | ${ours.batch} | ${ours.msPerStep.toFixed(1)} | ${ref === undefined ? '-' : ref.msPerStep.toFixed(1)} | ` +
        `${py === undefined ? '-' : py.ms_per_step.toFixed(1)} | ` +
        `${Number.isNaN(diff) ? '-' : diff.toExponential(2)} | ${ok ? 'yes' : 'NO'} |`,
    );
  }
  if (options.json !== undefined) {
    await writeFileAtomically(
      options.json,
      `${JSON.stringify({ options, backend: main.detail, reference: reference?.detail, rows }, null, 2)}\n`,
    );
  }
  if (failed) {
    console.error(
      `losses differ by more than ${options.tolerance} (relative) between ${options.backend} and ${options.reference}`,
    );
    process.exit(1);
  }
}

await main();

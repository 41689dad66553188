// The fused GELU and layer norm kernels (packages/kernels/src/wasm/transformer_ops.ts) against
// the tensor-op forms they replace, in one run: each op forward + backward at ViT-tiny's and
// BERT-mini's shapes, then whole training steps of both models with the kernels registered and
// unregistered in turn (pairs back to back, the order alternating), so a loaded machine slows both
// alike. Reports wall time and the process's CPU time (user + system); on one thread the CPU time
// is the step's own work and moves far less with the neighbours than the wall time does.
//
//   node bench/transformer-ops.mjs [--reps 20] [--steps 4] [--models vit,bert|none] [--threads 1]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  AdamWOptimizer,
  ClassificationObjective,
  createRandom,
  gelu,
  initBackend,
  layerNorm,
  MatryoshkaLoss,
  SharedHead,
} from '@mrl/core';
import { createVisionEncoder } from '@mrl/vision';
import { BertEncoder, bertConfig, MlmModel, TiedMlmObjective } from '@mrl/text';
import { arg } from './args.mjs';

const REPS = Number(arg('reps', '20'));
const STEPS = Number(arg('steps', '4'));
const MODELS = arg('models', 'vit,bert')
  .split(',')
  .filter((m) => m === 'vit' || m === 'bert');
const backend = await initBackend('wasm', { threads: Number(arg('threads', '1')) });

// Kernel names of @mrl/kernels' GELU, GELU_GRAD, LAYER_NORM, LAYER_NORM_GRAD.
const FUSED = ['MrlGelu', 'MrlGeluGrad', 'MrlLayerNorm', 'MrlLayerNormGrad'];
const configs = FUSED.map((name) => tf.getKernel(name, 'wasm'));
if (configs.some((c) => c === undefined)) throw new Error('the fused kernels are not registered on wasm');
/** Registers (true) or removes (false) the fused kernels; core's gelu and layerNorm follow. */
function fused(on) {
  for (const [i, name] of FUSED.entries()) {
    const there = tf.getKernel(name, 'wasm') !== undefined;
    if (on && !there) tf.registerKernel(configs[i]);
    if (!on && there) tf.unregisterKernel(name, 'wasm');
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pairedRatio = (a, b) => median(a.map((x, i) => x / b[i]));

/** Wall and CPU ms of one call of f. */
function timed(f) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  f();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

/** Alternates f under both settings `reps` times (after one warm-up each); per-setting samples. */
function compare(f, reps) {
  const s = { on: { wall: [], cpu: [] }, off: { wall: [], cpu: [] } };
  for (const on of [true, false]) {
    fused(on);
    f();
  }
  for (let i = 0; i < reps; i++) {
    for (const on of i % 2 === 0 ? [true, false] : [false, true]) {
      fused(on);
      const t = timed(f);
      const k = on ? 'on' : 'off';
      s[k].wall.push(t.wall);
      s[k].cpu.push(t.cpu);
    }
  }
  fused(true);
  return s;
}

const rows = [];
function report(what, s) {
  const row = {
    what,
    opsCpu: median(s.off.cpu),
    fusedCpu: median(s.on.cpu),
    ratioCpu: pairedRatio(s.on.cpu, s.off.cpu),
    opsWall: median(s.off.wall),
    fusedWall: median(s.on.wall),
    ratioWall: pairedRatio(s.on.wall, s.off.wall),
  };
  rows.push(row);
  console.log(
    `${what}: tensor ops ${row.opsCpu.toFixed(2)} ms cpu (${row.opsWall.toFixed(2)} wall), fused ${row.fusedCpu.toFixed(2)} ms cpu (${row.fusedWall.toFixed(2)} wall), fused/ops paired ${row.ratioCpu.toFixed(3)} cpu, ${row.ratioWall.toFixed(3)} wall`,
  );
}

console.log('# fused GELU and layer norm vs tensor ops');
console.log(`command: node bench/transformer-ops.mjs ${process.argv.slice(2).join(' ')}`);
console.log(
  `machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; load average at start: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(`mrl: TF.js ${tf.version.tfjs}, ${backend.detail}, Node ${process.version}`);

// One op, forward and backward, at a model's shape.
for (const [what, shape, op] of [
  ['GELU [16, 65, 768] (ViT-tiny MLP)', [16, 65, 768], (x) => gelu(x)],
  ['GELU [8, 128, 1024] (BERT-mini FF)', [8, 128, 1024], (x) => gelu(x)],
  ['layer norm [16, 65, 192] (ViT-tiny)', [16, 65, 192], (x, g, b) => layerNorm(x, g, b, 1e-6)],
  ['layer norm [8, 128, 256] (BERT-mini)', [8, 128, 256], (x, g, b) => layerNorm(x, g, b, 1e-12)],
]) {
  const c = shape[shape.length - 1];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const g = tf.randomNormal([c], 1, 0.1, 'float32', 2);
  const b = tf.randomNormal([c], 0, 0.1, 'float32', 3);
  const f = () =>
    tf.tidy(() => {
      const args = op.length === 1 ? [x] : [x, g, b];
      const { value, grads } = tf.valueAndGrads((...xs) => tf.sum(op(...xs)))(args);
      value.dataSync();
      for (const t of grads) t.dataSync();
    });
  report(`${what}, forward + backward`, compare(f, REPS));
  tf.dispose([x, g, b]);
}

// Whole training steps (the bench/speed.mjs setups: MRL head, AdamW).
function trainingStep(name) {
  const random = createRandom(1);
  let encoder;
  let runLoss;
  let extra;
  if (name === 'vit') {
    encoder = createVisionEncoder('vit-tiny-patch4', {}, random);
    const head = new SharedHead(encoder.embeddingDim, 10, random);
    const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: encoder.embeddingDim });
    const input = tf.randomNormal([16, 32, 32, 3], 0, 1, 'float32', 3);
    const labels = tf.tensor1d(
      Array.from({ length: 16 }, (_, i) => (i * 7919) % 10),
      'int32',
    );
    runLoss = () => loss.compute(encoder.encode(input, true), { labels }).total;
    extra = head.variables();
  } else {
    const config = bertConfig('bert-mini', { vocabSize: 30522 });
    encoder = new BertEncoder(config, random);
    const objective = new TiedMlmObjective(encoder.tokenEmbedding, { head: 'chunked' });
    const n = 8;
    const t = 128;
    const positions = Array.from({ length: n * t }, (_, i) => i).filter((i) => (i * 2654435761) % 100 < 15);
    const batch = {
      input: {
        ids: tf.tensor2d(
          Array.from({ length: n * t }, (_, i) => 5 + ((i * 104729) % 30517)),
          [n, t],
          'int32',
        ),
        attentionMask: tf.ones([n, t], 'int32'),
      },
      positions: tf.tensor1d(positions, 'int32'),
      target: {
        labels: tf.tensor1d(
          positions.map((_, i) => 5 + ((i * 7919) % 30517)),
          'int32',
        ),
      },
      size: n,
    };
    const model = new MlmModel(encoder, new MatryoshkaLoss(objective, { embeddingDim: config.embeddingDim }));
    runLoss = () => model.loss(batch, random).total;
    extra = objective.variables();
  }
  const trainable = new Map(
    [
      ...[...encoder.variables()].map(([k, v]) => [`encoder/${k}`, v]),
      ...[...extra].map(([k, v]) => [`head/${k}`, v]),
    ].filter(([, v]) => v.trainable),
  );
  const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 1e-4, weightDecay: 0.01 });
  return () => {
    const { value, grads } = tf.variableGrads(runLoss, [...trainable.values()]);
    optimizer.apply(trainable, new Map([...trainable].map(([k, v]) => [k, grads[v.name]])), 1e-4);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
}

for (const name of MODELS) {
  const step = trainingStep(name);
  report(`${name === 'vit' ? 'ViT-tiny' : 'BERT-mini'} training step (MRL head)`, compare(step, STEPS));
}

console.log(
  `\nload average at end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(
  '| case | tensor ops ms (cpu) | fused ms (cpu) | fused / ops, paired (cpu) | tensor ops ms (wall) | fused ms (wall) | fused / ops, paired (wall) |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.what} | ${r.opsCpu.toFixed(1)} | ${r.fusedCpu.toFixed(1)} | ${r.ratioCpu.toFixed(3)} | ${r.opsWall.toFixed(1)} | ${r.fusedWall.toFixed(1)} | ${r.ratioWall.toFixed(3)} |`,
  );
}

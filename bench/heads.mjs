// Matryoshka head cost: ms per training step (forward, backward, SGD update) of the head alone,
// for d=512, dims 8..512, 100 classes, batch 256, as ratios to a plain single-dim head.
// Usage: node bench/heads.mjs [--backend wasm|cpu] [--steps 30]
import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  initBackend,
  MatryoshkaLoss,
  SeparateHeads,
  SgdOptimizer,
  SharedHead,
} from '@mrl/core';
import { arg } from './args.mjs';

const backend = await initBackend(arg('backend', 'wasm'), { kernels: arg('kernels', 'auto') });
const steps = Number(arg('steps', '30'));
const [n, d, classes] = [256, 512, 100];

function makeCase(label, buildLoss) {
  const random = createRandom(1);
  const loss = buildLoss(random);
  const z = tf.randomNormal([n, d], 0, 1, 'float32', 2);
  const labels = tf.tensor1d(
    Array.from({ length: n }, (_, i) => i % classes),
    'int32',
  );
  const variables = loss.variables();
  const optimizer = new SgdOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 });
  const step = () => {
    const { value, grads } = tf.variableGrads(() => loss.compute(z, { labels }).total, [...variables.values()]);
    const named = new Map([...variables].map(([name, v]) => [name, grads[v.name]]));
    optimizer.apply(variables, named, 0.01);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  return { label, step };
}

const cases = [
  makeCase(
    `plain head (dim ${d} only)`,
    (r) =>
      new MatryoshkaLoss(new ClassificationObjective(new SharedHead(d, classes, r)), { embeddingDim: d, dims: [d] }),
  ),
  makeCase('MRL: separate heads', (r) => {
    const dims = [8, 16, 32, 64, 128, 256, 512];
    return new MatryoshkaLoss(new ClassificationObjective(new SeparateHeads(d, classes, dims, r)), {
      embeddingDim: d,
      dims,
    });
  }),
  makeCase(
    'MRL-E: shared head, sliced',
    (r) =>
      new MatryoshkaLoss(new ClassificationObjective(new SharedHead(d, classes, r, 'sliced')), { embeddingDim: d }),
  ),
  makeCase(
    'MRL-E: shared head, running sums',
    (r) =>
      new MatryoshkaLoss(new ClassificationObjective(new SharedHead(d, classes, r, 'running-sum')), {
        embeddingDim: d,
      }),
  ),
  makeCase(
    'MRL-E: running sums, fused gradient',
    (r) => new MatryoshkaLoss(new ClassificationObjective(new SharedHead(d, classes, r, 'fused')), { embeddingDim: d }),
  ),
];

// Interleave the cases round by round so drift in machine speed affects all of them alike.
const times = cases.map(() => []);
for (const c of cases) for (let i = 0; i < 5; i++) c.step();
for (let round = 0; round < steps; round++) {
  cases.forEach((c, j) => {
    const t0 = performance.now();
    c.step();
    times[j].push(performance.now() - t0);
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(times[0]);
console.log(`backend: ${backend.name}; d=${d}, ${classes} classes, batch ${n}, ${steps} steps each, median`);
console.log(`${'head'.padEnd(36)}  ${'ms/step'.padStart(8)}  ${'vs plain'.padStart(8)}`);
cases.forEach((c, j) => {
  const ms = median(times[j]);
  console.log(`${c.label.padEnd(36)}  ${ms.toFixed(2).padStart(8)}  ${(ms / base).toFixed(2).padStart(7)}x`);
});
console.log(`tensors alive at the end: ${tf.memory().numTensors}`);

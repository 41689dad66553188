// Adaptive deployment on Fashion-MNIST: trains an MLP with d=256 and the Matryoshka loss, then
// measures (1) shortlist/re-rank and funnel retrieval against exact full-dim search and
// (2) the adaptive classification cascade against the full-dim classifier.
// Usage: node bench/adaptive-fashion-mnist.mjs [--epochs 10] [--backend wasm]
import * as tf from '@tensorflow/tfjs';
import {
  evaluateCascade,
  MatryoshkaIndex,
  meanAveragePrecisionAtK,
  recallAtK,
  tuneCascadeThresholds,
} from '@mrl/adaptive';
import { createRandom, embedArrays, initBackend, MlpEncoder, trainClassifier } from '@mrl/core';
import { loadFashionMnist } from '@mrl/vision';
import { arg } from './args.mjs';

const backend = await initBackend(arg('backend', 'wasm'));
const epochs = Number(arg('epochs', '10'));
const d = 256;
const dims = [8, 16, 32, 64, 128, 256];

const data = await loadFashionMnist();
const toDataset = (split, from, to) => ({
  inputs: split.images.subarray(from * 784, to * 784),
  exampleShape: [28, 28, 1],
  labels: split.labels.subarray(from, to),
  count: to - from,
  numClasses: 10,
});
// The last 10,000 training images are the validation split that tunes the cascade.
const train = toDataset(data.train, 0, 50000);
const validation = toDataset(data.train, 50000, 60000);
const test = toDataset(data.test, 0, 10000);
console.log(
  `backend: ${backend.name}; MLP 784-512-512-${d}, MRL over ${dims.join(',')}, ${epochs} epochs on ${train.count} images`,
);

const encoder = new MlpEncoder(
  { architecture: 'mlp', embeddingDim: d, inputDim: 784, hidden: [512, 512] },
  createRandom(0, 4),
);
const run = await trainClassifier({
  encoder,
  train,
  dims,
  head: 'separate',
  trainer: { epochs, batchSize: 128, seed: 0, optimizer: { type: 'adamw', lr: 1e-3 } },
});

const logitsPerDim = (emb) =>
  dims.map((m) => {
    const scores = tf.tidy(() => {
      const z = tf.tensor2d(emb.data, [emb.rows, emb.dim]);
      const [l] = run.head.logits(z, [m]);
      return l;
    });
    const out = new Float32Array(scores.dataSync());
    scores.dispose();
    return out;
  });

const [trainEmb, valEmb, testEmb] = [
  await embedArrays(encoder, train),
  await embedArrays(encoder, validation),
  await embedArrays(encoder, test),
];

// Adaptive classification.
const valInput = { dims, scores: logitsPerDim(valEmb), numClasses: 10 };
const testInput = { dims, scores: logitsPerDim(testEmb), numClasses: 10 };
const tuned = tuneCascadeThresholds(valInput, validation.labels, { maxAccuracyDrop: 0.003 });
const cascade = evaluateCascade(testInput, test.labels, tuned.thresholds);
const fullAccuracy = cascade.accuracyPerDim.at(-1);
console.log(
  '\nAdaptive classification (test set; thresholds tuned on the validation split for at most 0.3 points below full dim)',
);
console.log(`  full-dim (${d}) top-1: ${(100 * fullAccuracy).toFixed(2)}%`);
console.log(
  `  cascade top-1:        ${(100 * cascade.accuracy).toFixed(2)}% (${(100 * (cascade.accuracy - fullAccuracy)).toFixed(2)} points)`,
);
console.log(
  `  expected dims:        ${cascade.expectedDim.toFixed(1)} of ${d} (${(cascade.expectedDim / d).toFixed(3)} d)`,
);
console.log(
  `  stops per dim:        ${cascade.histogram.map((h) => `${h.dim}:${(100 * h.fraction).toFixed(1)}%`).join(' ')}`,
);

// Adaptive retrieval: test images as queries over the 50,000 training images.
const index = MatryoshkaIndex.fromVectors(trainEmb.data, { dim: d, labels: train.labels });
const queries = testEmb.data;
const time = (f) => {
  const t0 = performance.now();
  const result = f();
  return { result, ms: performance.now() - t0 };
};
const exact = time(() => index.search(queries, { k: 10 }));
const rows = [
  ['exact, full dim', exact],
  [
    'shortlist 16 dims (k=200) -> re-rank 256',
    time(() => index.shortlistRerank(queries, { shortlistDim: 16, shortlistK: 200, rerankDim: d, k: 10 })),
  ],
  [
    'shortlist 8 dims (k=400) -> re-rank 256',
    time(() => index.shortlistRerank(queries, { shortlistDim: 8, shortlistK: 400, rerankDim: d, k: 10 })),
  ],
  [
    'funnel 16-32-64-128-256 / 200-100-50-25',
    time(() => index.funnel(queries, { dims: [16, 32, 64, 128, 256], shortlists: [200, 100, 50, 25], k: 10 })),
  ],
];
const exactMap = meanAveragePrecisionAtK(exact.result, test.labels, train.labels, 10);
console.log(`\nAdaptive retrieval: ${test.count} test queries over ${train.count} training images, cosine, k=10`);
console.log(
  `${'method'.padEnd(42)}  ${'FLOPs/query'.padStart(12)}  ${'x fewer'.padStart(8)}  ${'recall@10'.padStart(9)}  ${'mAP@10'.padStart(7)}  ${'mAP ratio'.padStart(9)}  ${'speed-up'.padStart(8)}`,
);
for (const [label, { result, ms }] of rows) {
  const map = meanAveragePrecisionAtK(result, test.labels, train.labels, 10);
  console.log(
    `${label.padEnd(42)}  ${result.flopsPerQuery.toExponential(3).padStart(12)}  ${(exact.result.flopsPerQuery / result.flopsPerQuery).toFixed(2).padStart(8)}  ${recallAtK(result, exact.result, 10).toFixed(4).padStart(9)}  ${map.toFixed(4).padStart(7)}  ${(map / exactMap).toFixed(4).padStart(9)}  ${(exact.ms / ms).toFixed(2).padStart(7)}x`,
  );
}

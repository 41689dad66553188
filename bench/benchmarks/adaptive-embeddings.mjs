// Adaptive deployment on a run's Matryoshka embeddings (written by `mrl-cli embed`): the funnel
// against exact full-dim search (FLOPs per query, mAP@10), and the classification cascade against
// the full-dim classifier (accuracy, mean dims). The cascade's classifiers are linear probes, one
// per prefix, trained here on the training embeddings; its thresholds are tuned on the even test
// rows and evaluated on the odd ones (the glyph folder's test rows alternate between fonts).
//
//   node bench/benchmarks/adaptive-embeddings.mjs --train <run>/embeddings/train-d64 \
//     --test <run>/embeddings/test-d64 [--dims 8,16,32,64] [--max-drop 0.005] [--epochs 30]
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import {
  evaluateCascade,
  MatryoshkaIndex,
  meanAveragePrecisionAtK,
  recallAtK,
  tuneCascadeThresholds,
} from '@mrl/adaptive';
import { initBackend, readEmbeddings, readNpyHeader } from '@mrl/core';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
await initBackend(flag('backend', 'wasm'));
const maxDrop = Number(flag('max-drop', '0.005'));
const epochs = Number(flag('epochs', '30'));

const readLabels = async (path) => {
  const bytes = new Uint8Array(await readFile(path));
  const header = readNpyHeader(bytes);
  if (header === undefined) throw new Error(`${path} is not a .npy file`);
  const n = header.shape[0];
  const body = bytes.slice(header.dataOffset);
  if (header.descr === '<i4') return new Int32Array(body.buffer, 0, n);
  if (header.descr === '<i8') return Int32Array.from(new BigInt64Array(body.buffer, 0, n), Number);
  throw new Error(`${path}: labels of dtype ${header.descr}`);
};
const load = async (base) => ({
  emb: await readEmbeddings(`${base}.npy`),
  labels: await readLabels(`${base}.labels.npy`),
});
const train = await load(flag('train'));
const test = await load(flag('test'));
const d = train.emb.dim;
const dims = (flag('dims') ?? '').split(',').filter(Boolean).map(Number);
if (dims.length === 0) for (let m = 8; m <= d; m *= 2) dims.push(m);
const numClasses = Math.max(...train.labels, ...test.labels) + 1;
console.log(
  `${train.emb.rows} training / ${test.emb.rows} test embeddings, d=${d}, ${numClasses} classes, dims ${dims}`,
);

// --- funnel -----------------------------------------------------------------------------------
const index = MatryoshkaIndex.fromVectors(train.emb.data, { dim: d, labels: train.labels });
const queries = test.emb.data;
const exact = index.search(queries, { k: 10 });
const exactMap = meanAveragePrecisionAtK(exact, test.labels, train.labels, 10);
const funnels = [
  ['exact, full dim', exact],
  [
    `shortlist 8 (k=400) -> re-rank ${d}`,
    index.shortlistRerank(queries, { shortlistDim: 8, shortlistK: 400, rerankDim: d, k: 10 }),
  ],
  [
    `shortlist 16 (k=200) -> re-rank ${d}`,
    index.shortlistRerank(queries, { shortlistDim: 16, shortlistK: 200, rerankDim: d, k: 10 }),
  ],
  [
    `funnel ${dims.join('-')} / ${dims
      .slice(1)
      .map((_, i) => 400 >> i)
      .join('-')}`,
    index.funnel(queries, { dims, shortlists: dims.slice(1).map((_, i) => 400 >> i), k: 10 }),
  ],
  [
    `funnel ${dims.join('-')} / ${dims
      .slice(1)
      .map((_, i) => 200 >> i)
      .join('-')}`,
    index.funnel(queries, { dims, shortlists: dims.slice(1).map((_, i) => 200 >> i), k: 10 }),
  ],
];
console.log(`\nRetrieval: ${test.emb.rows} test queries over ${train.emb.rows} training embeddings, cosine, k=10`);
console.log('| method | FLOPs/query | x fewer | recall@10 vs exact | mAP@10 | mAP@10 / exact |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [label, result] of funnels) {
  const map = meanAveragePrecisionAtK(result, test.labels, train.labels, 10);
  console.log(
    `| ${label} | ${result.flopsPerQuery.toExponential(3)} | ${(exact.flopsPerQuery / result.flopsPerQuery).toFixed(2)} | ${recallAtK(result, exact, 10).toFixed(4)} | ${map.toFixed(4)} | ${(map / exactMap).toFixed(4)} |`,
  );
}

// --- cascade ----------------------------------------------------------------------------------
// One softmax-regression probe per prefix on the (unit-norm) embeddings, full batch Adam.
const probe = (m) =>
  tf.tidy(() => {
    const x = tf.tensor2d(train.emb.data, [train.emb.rows, d]).slice([0, 0], [-1, m]);
    const y = tf.oneHot(tf.tensor1d(train.labels, 'int32'), numClasses);
    const w = tf.variable(tf.zeros([m, numClasses]));
    const b = tf.variable(tf.zeros([numClasses]));
    const opt = tf.train.adam(0.05);
    const scale = Math.sqrt(d); // unit vectors: scale so logits can grow
    for (let e = 0; e < epochs * 4; e++)
      opt.minimize(() => tf.losses.softmaxCrossEntropy(y, x.mul(scale).matMul(w).add(b)));
    const xt = tf.tensor2d(test.emb.data, [test.emb.rows, d]).slice([0, 0], [-1, m]);
    const logits = xt.mul(scale).matMul(w).add(b);
    const out = new Float32Array(logits.dataSync());
    opt.dispose();
    return out;
  });
const scores = dims.map(probe);
const rows = (parity) => [...Array(test.emb.rows).keys()].filter((i) => i % 2 === parity);
const subset = (idx) => ({
  input: {
    dims,
    numClasses,
    scores: scores.map((s) => {
      const out = new Float32Array(idx.length * numClasses);
      idx.forEach((i, r) => out.set(s.subarray(i * numClasses, (i + 1) * numClasses), r * numClasses));
      return out;
    }),
  },
  labels: Int32Array.from(idx, (i) => test.labels[i]),
});
const val = subset(rows(0));
const held = subset(rows(1));
const tuned = tuneCascadeThresholds(val.input, val.labels, { maxAccuracyDrop: maxDrop });
const cascade = evaluateCascade(held.input, held.labels, tuned.thresholds);
const full = cascade.accuracyPerDim.at(-1);
console.log(
  `\nCascade (linear probes; thresholds tuned on ${val.labels.length} even test rows for at most ${100 * maxDrop} points below full dim, evaluated on ${held.labels.length} odd rows)`,
);
console.log(
  `probe top-1 per dim: ${dims.map((m, j) => `${m}:${(100 * cascade.accuracyPerDim[j]).toFixed(2)}%`).join(' ')}`,
);
console.log(
  `full-dim top-1 ${(100 * full).toFixed(2)}%, cascade ${(100 * cascade.accuracy).toFixed(2)}% (${(100 * (cascade.accuracy - full)).toFixed(2)} points), mean dims ${cascade.expectedDim.toFixed(1)} of ${d} (${(cascade.expectedDim / d).toFixed(3)} d); stops ${cascade.histogram.map((h) => `${h.dim}:${(100 * h.fraction).toFixed(1)}%`).join(' ')}`,
);

import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { fitAdaptor, initBackend, fitPca, applyPca, applyAdaptor, PairwiseSimilarityObjective, TopKSimilarityObjective, similarityTarget } from '@mrl/core';
const arg = (name, fallback) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] : fallback; };
await initBackend('wasm');
const b = readFileSync('/tmp/ff64-wt19/embeddings/train-d64.npy'); const hl = b.readUInt16LE(8);
const all = new Float32Array(new Uint8Array(b.subarray(10 + hl)).buffer);
const d = 64, n = 60000;
const corpus = { data: all, rows: n, dim: d };
const dims = [4, 8, 16, 32, 64];
const evalRows = { data: all.subarray(0, 1024 * d), rows: 1024, dim: d };
const losses = (rows) => tf.tidy(() => {
  const e = tf.tensor2d(evalRows.data, [1024, d]);
  const t = similarityTarget(e, 10);
  const y = tf.tensor2d(rows.data, [1024, d]);
  const p = new PairwiseSimilarityObjective().prefixLosses(y, dims, t).map((s) => s.dataSync()[0].toFixed(4));
  const k = new TopKSimilarityObjective().prefixLosses(y, dims, t).map((s) => s.dataSync()[0].toFixed(4));
  return `pair ${p.join(' ')} | topk ${k.join(' ')}`;
});
console.log('trunc ', losses(evalRows));
const pca = fitPca(corpus);
console.log('pca   ', losses(applyPca(pca, evalRows, { center: false })));
console.log('pcaC  ', losses(applyPca(pca, evalRows, { center: true })));
const { adaptor } = await fitAdaptor({ corpus, dims, batchSize: Number(arg('batch','256')), k: Number(arg('k','10')), epochs: Number(arg('epochs','2')), lr: Number(arg('lr','0.001')), hidden: Number(arg('hidden','128')),
  lossWeights: { reconstruction: Number(arg('rec','0.1')), topK: Number(arg('topk','1')), pairwise: Number(arg('pair','1')) } });
const w = await adaptor.weights();
console.log('adapt ', losses(applyAdaptor(w, evalRows)));

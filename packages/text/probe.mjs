import * as tf from '@tensorflow/tfjs';
import { initBackend, createRandom, MatryoshkaLoss, createOptimizer } from '@mrl/core';
import { BertEncoder, bertConfig } from './dist/bert.js';
import { TiedMlmObjective, MlmModel, maskTokens, mlmBatch } from './dist/mlm.js';
const backend = process.argv[2]; const V = Number(process.argv[3]); const d = Number(process.argv[4] ?? 128);
console.log(await initBackend(backend));
const rnd = createRandom(0);
const cfg = bertConfig('bert-tiny', { vocabSize: V, embeddingDim: d, numHeads: 2, intermediateSize: 4*d, dropout: 0, maxPositions: 128 });
const enc = new BertEncoder(cfg, rnd);
const obj = new TiedMlmObjective(enc.tokenEmbedding);
const model = new MlmModel(enc, new MatryoshkaLoss(obj, { embeddingDim: d }));
const B=32, T=64;
const ids = new Int32Array(B*T).map(()=>5+Math.floor(Math.random()*(V-5))); const am = new Int32Array(B*T).fill(1);
const enc1 = { ids, attentionMask: am, batch: B, length: T };
const vars = [...model.variables().values()];
const opt = tf.train.adam(1e-3);
for (let s=0;s<6;s++) {
  const t0=performance.now();
  const b = mlmBatch(enc1, maskTokens(enc1, {pad:0,unk:1,cls:2,sep:3,mask:4}, V, rnd));
  const {value, grads} = tf.variableGrads(() => model.loss(b, rnd).total, vars);
  const l = value.dataSync()[0];
  opt.applyGradients(grads); tf.dispose(grads); value.dispose(); b.dispose();
  console.log(s, l.toFixed(3), (performance.now()-t0).toFixed(0), 'ms', tf.memory().numTensors);
}
{
const b = mlmBatch(enc1, maskTokens(enc1, {pad:0,unk:1,cls:2,sep:3,mask:4}, V, rnd));
let t0=performance.now(); const st = enc.encodeTokens(b.input, true); st.dataSync(); console.log('enc fwd', performance.now()-t0); st.dispose();
t0=performance.now(); const l = model.loss(b, rnd); l.total.dataSync(); console.log('loss fwd', performance.now()-t0);
const pr = await tf.profile(() => tf.variableGrads(() => model.loss(b, rnd).total, vars));
const agg = {}; for (const k of pr.kernels) agg[k.name] = (agg[k.name]||0) + k.kernelTimeMs;
console.log(Object.entries(agg).sort((a,b)=>b[1]-a[1]).slice(0,10));
}

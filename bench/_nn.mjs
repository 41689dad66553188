import { initBackend, embedArrays, retrievalMetrics } from '@mrl/core';
import { loadFashionMnist, loadVisionModel, buildVisionEncoder } from '@mrl/vision';
await initBackend('wasm');
const data = await loadFashionMnist();
const ds = (s) => ({ inputs: s.images, exampleShape: [28, 28, 1], labels: s.labels, count: s.count, numClasses: 10 });
const train = ds(data.train), test = ds(data.test);
const enc = await loadVisionModel('/tmp/pilot/r1/model');
const tr = await embedArrays(enc, train), te = await embedArrays(enc, test);
const Q = 2000, dims = [8, 16, 32, 128];
async function nn(trd, ted, label) {
  const r = await retrievalMetrics({ database: trd, databaseLabels: train.labels, queries: { data: ted.data.subarray(0, Q * ted.dim), rows: Q, dim: ted.dim }, queryLabels: test.labels.subarray(0, Q), dims });
  console.log(label, r.map((x) => (100 * x.nnTop1).toFixed(2)).join(' '));
}
await nn(tr, te, 'raw cosine');
const d = tr.dim, mean = new Float64Array(d);
for (let i = 0; i < tr.rows; i++) for (let j = 0; j < d; j++) mean[j] += tr.data[i * d + j] / tr.rows;
const center = (m) => ({ ...m, data: m.data.map((v, k) => v - mean[k % d]) });
console.log('mean abs of first 8:', Array.from(mean.slice(0, 8), (v) => v.toFixed(2)).join(' '));
const sd = new Float64Array(d); for (let i = 0; i < tr.rows; i++) for (let j = 0; j < d; j++) sd[j] += (tr.data[i*d+j]-mean[j])**2 / tr.rows;
console.log('sd of first 8:', Array.from(sd.slice(0, 8), (v) => Math.sqrt(v).toFixed(2)).join(' '));
await nn(center(tr), center(te), 'centred cosine');

#!/usr/bin/env node
// Where a two-stage query's time goes, and what the re-rank kernel changes: for each first
// stage (an HNSW graph on a prefix, efSearch = K), the shortlist alone, the exact re-rank of
// that shortlist on the JavaScript loop and on the wasm SIMD kernel (same scores, bit for bit),
// and the whole search; timings alternate between configurations, best of --rounds x 3, in CPU
// time of the process (one search thread).
//
//   pnpm run build && node bench/rerank-kernel.mjs [--vectors db.npy --query-vectors q.npy | --n 60000]
//     [--queries 200] [--recall-queries 1000] [--rounds 5] [--efc 64]
//     [--configs f32,32,8,64;f16,64,8,40   (quantisation, prefix dim m, M, K; ';' between)]
import { loadavg } from 'node:os';
import { MatryoshkaIndex, recallAtK } from '@mrl/adaptive';
import { PrefixHnsw } from '@mrl/adaptive/node';
import { readNpy, synthetic } from './retrieval-data.mjs';
import { argWithValue as arg } from './args.mjs';

const NQ = Number(arg('queries', 200));
const NR = Number(arg('recall-queries', 1000));
const ROUNDS = Number(arg('rounds', 5));
const EFC = Number(arg('efc', 64));
const configs = arg('configs', 'f32,32,8,64;f16,64,8,40')
  .split(';')
  .map((s) => {
    const [q, m, M, K] = s.split(',');
    return { q, m: Number(m), M: Number(M), K: Number(K) };
  });
// Real embeddings from --vectors / --query-vectors, else the synthetic set of retrieval.mjs.
let data;
let all;
let shape;
if (arg('vectors', undefined) !== undefined) {
  ({ data, shape } = readNpy(arg('vectors', undefined)));
  all = readNpy(arg('query-vectors', arg('vectors', undefined))).data;
} else {
  const s = synthetic({ n: Number(arg('n', 60_000)), nq: NR, d: 256, classes: 1000, seed: 1 });
  data = s.vectors;
  all = s.queries;
  shape = [Number(arg('n', 60_000)), 256];
}
const d = shape[1];
const recallQueries = all.slice(0, NR * d);
const queries = recallQueries.subarray(0, NQ * d);
const index = MatryoshkaIndex.fromVectors(data, { dim: d });
const exact = index.search(recallQueries, { k: 10 });
const load0 = loadavg();

for (const c of configs) {
  const t = performance.now();
  c.graph = PrefixHnsw.build(index, {
    dim: c.m,
    quantization: c.q,
    connectivity: c.M,
    expansionAdd: EFC,
    expansionSearch: c.K,
    threads: 2,
  });
  c.build = (performance.now() - t) / 1000;
  c.recall = recallAtK(c.graph.search(recallQueries, { shortlistK: c.K, k: 10 }), exact, 10);
  c.ids = c.graph.shortlist(queries, c.K);
  c.best = { shortlist: Infinity, js: Infinity, wasm: Infinity, search: Infinity };
}
// CPU milliseconds of the process (user + system): on a shared machine the time spent
// descheduled would otherwise dominate a 10 ms measurement.
const time = (fn) => {
  const s = process.cpuUsage();
  fn();
  const used = process.cpuUsage(s);
  return (used.user + used.system) / 1000;
};
for (let r = 0; r < ROUNDS; r++) {
  for (const c of configs) {
    for (let i = 0; i < 3; i++) {
      const b = c.best;
      b.shortlist = Math.min(
        b.shortlist,
        time(() => c.graph.shortlist(queries, c.K)),
      );
      b.js = Math.min(
        b.js,
        time(() => index.rerank(queries, c.ids, c.K, { k: 10, kernel: 'javascript' })),
      );
      b.wasm = Math.min(
        b.wasm,
        time(() => index.rerank(queries, c.ids, c.K, { k: 10, kernel: 'wasm-simd' })),
      );
      b.search = Math.min(
        b.search,
        time(() => c.graph.search(queries, { shortlistK: c.K, k: 10 })),
      );
    }
  }
}
const us = (ms) => ((ms / NQ) * 1000).toFixed(1).padStart(6);
console.log(
  `# ${shape[0]} x ${d}, ${NQ} queries timed (recall on ${NR}), efConstruction ${EFC}, 1 search thread; load average ${load0.map((x) => x.toFixed(1)).join(' ')} -> ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
console.log(
  '| first stage (efSearch = K)  | recall@10 | shortlist us/q | re-rank JS us/q | re-rank wasm us/q | search us/q | q/CPU s |',
);
console.log(
  '| :-------------------------- | --------: | -------------: | --------------: | ----------------: | ----------: | ------: |',
);
for (const c of configs) {
  const b = c.best;
  const name = `${c.q} m=${c.m} M=${c.M} K=${c.K}`.padEnd(27);
  console.log(
    `| ${name} | ${c.recall.toFixed(4).padStart(9)} | ${us(b.shortlist).padStart(14)} | ${us(b.js).padStart(15)} | ${us(b.wasm).padStart(17)} | ${us(b.search).padStart(11)} | ${((NQ / b.search) * 1000).toFixed(0).padStart(7)} |`,
  );
}

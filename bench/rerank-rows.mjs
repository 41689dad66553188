#!/usr/bin/env node
// What fetching a re-rank's candidate rows costs by itself: per query, K random rows of d
// float32 copied next to each other (TypedArray.set, what the wasm re-rank kernel does), the
// same after first touching one value per 64-byte line of each row (independent loads the core
// overlaps), and the touch alone. CPU microseconds per query, best of 15 x 4 alternating runs.
//
//   node bench/rerank-rows.mjs [--vectors db.npy] [--n 60000] [--d 256] [--k 40] [--queries 1000]
import { readNpy } from './retrieval-data.mjs';
import { argWithValue as arg } from './args.mjs';
import { cpuMs } from './paired.mjs';

const file = arg('vectors', undefined);
const loaded = file !== undefined ? readNpy(file) : undefined;
const [N, d] = loaded ? loaded.shape : [Number(arg('n', 60_000)), Number(arg('d', 256))];
const x = loaded ? loaded.data : Float32Array.from({ length: N * d }, (_, i) => Math.sin(i));
const K = Number(arg('k', 40));
const NQ = Number(arg('queries', 1000));
let seed = 1;
const ids = Int32Array.from({ length: NQ * K }, () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % N;
});
const rows = new Float32Array(K * d);
let sink = 0;
const touch = (i) => {
  let t = 0;
  for (let c = 0; c < K; c++) {
    const b = ids[i * K + c] * d;
    for (let j = 0; j < d; j += 16) t += x[b + j];
  }
  sink += t;
};
const copy = (i) => {
  for (let c = 0; c < K; c++) {
    const b = ids[i * K + c] * d;
    rows.set(x.subarray(b, b + d), c * d);
  }
};
const ways = {
  copy: () => {
    for (let i = 0; i < NQ; i++) copy(i);
  },
  'touch, then copy': () => {
    for (let i = 0; i < NQ; i++) {
      touch(i);
      copy(i);
    }
  },
  'touch only': () => {
    for (let i = 0; i < NQ; i++) touch(i);
  },
};
const best = {};
for (let round = 0; round < 4; round++) {
  for (const [name, fn] of Object.entries(ways)) {
    for (let r = 0; r < 15; r++) best[name] = Math.min(best[name] ?? Infinity, cpuMs(fn));
  }
}
console.log(`# ${N} x ${d}${file ? ` (${file})` : ' (generated)'}, K = ${K} random rows per query, ${NQ} queries`);
for (const [name, ms] of Object.entries(best))
  console.log(`${name.padEnd(18)} ${((ms / NQ) * 1000).toFixed(1)} us/query (CPU)`);
if (Number.isNaN(sink)) console.log('');

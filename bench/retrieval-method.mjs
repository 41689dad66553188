#!/usr/bin/env node
// One retrieval method in its own process (called by bench/retrieval-isolated.mjs), so that its
// peak RSS (ru_maxrss) is the data plus what this method builds and nothing else.
//
//   node bench/retrieval-method.mjs DIR '{"kind":"int8-scan","m":64,"K":100}'
// DIR holds db.npy and queries.npy (float32). Prints one JSON line: { rows: [{ name, seconds,
// build_s, bytes, ids }], dataRss, peakRss } (bytes: what the first stage searches; RSS in bytes).
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MatryoshkaIndex, recallAtK } from '@mrl/adaptive';
import {
  ChunkedIndex,
  nativeGemm,
  openVectorDb,
  PrefixHnsw,
  saveIndex,
  searchDb,
  writeIndexToDb,
} from '@mrl/adaptive/node';
import { readNpy } from './retrieval-data.mjs';

const [dir, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const K = spec.k ?? 10;
const REPS = spec.reps ?? 3;
const { data: vectors, shape } = readNpy(join(dir, 'db.npy'), spec.n ?? Infinity);
const { data: queries, shape: qshape } = readNpy(join(dir, 'queries.npy'));
const [N, d] = shape;
const NQ = qshape[0];
const dataRss = process.memoryUsage().rss;
const gemm = spec.native === false ? undefined : nativeGemm();
if (spec.native !== false && gemm === undefined) throw new Error('onnxruntime-node does not load here');
const index = MatryoshkaIndex.fromVectors(vectors, { dim: d, metric: 'cosine', ...(gemm ? { gemm } : {}) });

// Best of REPS runs over all queries after a warm-up run (pages in memory-mapped graphs, JIT):
// wall seconds, and CPU seconds of the process (what a loaded machine inflates least).
function timed(fn, reps = REPS) {
  fn(queries);
  let best = Infinity;
  let bestCpu = Infinity;
  let result;
  for (let r = 0; r < reps; r++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    result = fn(queries);
    best = Math.min(best, (performance.now() - start) / 1000);
    const used = process.cpuUsage(cpu);
    bestCpu = Math.min(bestCpu, (used.user + used.system) / 1e6);
  }
  return { ids: Array.from(result.ids), seconds: best, cpu_seconds: bestCpu };
}
const since = (t) => (performance.now() - t) / 1000;
const rows = [];
const tmp = spec.tmp ?? dir;

if (spec.kind === 'exact') {
  rows.push({
    name: `exact flat, ${gemm ? gemm.name : 'JavaScript scan'}`,
    build_s: 0,
    bytes: N * d * 4,
    ...timed((q) => index.search(q, { k: K }), spec.native === false ? 1 : REPS),
  });
} else if (spec.kind === 'int8-scan' || spec.kind === 'binary-scan') {
  const t = performance.now();
  const first =
    spec.kind === 'int8-scan'
      ? index.quantize({ kind: 'int8', dim: spec.m, scale: spec.scale ?? 'per-dim' })
      : index.quantize({ kind: 'binary', dim: spec.m });
  const build_s = since(t);
  const bytes = first.kind === 'int8' ? first.codes.byteLength + first.scales.byteLength : first.bits.byteLength;
  const label = first.kind === 'int8' ? `int8(${spec.m}) flat scan` : `binary(${spec.m}) flat scan`;
  for (const shortlistK of spec.K) {
    rows.push({
      name: `${label} K=${shortlistK} -> ${d}${gemm ? ', native' : ', JS'}`,
      build_s,
      bytes,
      ...timed((q) =>
        index.shortlistRerank(q, { shortlistDim: spec.m, shortlistK, rerankDim: d, k: K, firstStage: first }),
      ),
    });
  }
} else if (spec.kind === 'chunked') {
  const file = join(tmp, `chunked-${process.pid}.mrlidx`);
  const t = performance.now();
  saveIndex(index, file, { firstStage: spec.first });
  const build_s = since(t);
  const db = ChunkedIndex.open(file, { gemm });
  const what = spec.first.kind === 'int8' ? `int8(${spec.first.dim})` : `binary(${spec.first.dim})`;
  for (const shortlistK of spec.K) {
    rows.push({
      name: `ChunkedIndex ${what} scan${gemm ? ' (native)' : ' (JS)'} K=${shortlistK}, rows read from the file`,
      build_s,
      bytes: db.heapBytes,
      ...timed((q) => db.search(q, { k: K, shortlistK })),
    });
  }
  db.close();
  rmSync(file);
} else if (spec.kind === 'hnsw') {
  const options = {
    dim: spec.m,
    quantization: spec.q,
    connectivity: spec.M,
    expansionAdd: spec.efC,
    threads: spec.threads ?? 1,
  };
  // spec.graphFile: where the graph is kept; when it exists already (a later paired timing),
  // it is opened instead of built and spec.build_s reports the first build.
  const file = spec.graphFile ?? join(tmp, `hnsw-${process.pid}.usearch`);
  let build_s = spec.build_s;
  if (!existsSync(file)) {
    const t = performance.now();
    const built = PrefixHnsw.build(index, options);
    build_s = since(t);
    built.save(file);
  }
  const bytes = statSync(file).size;
  // spec.Ks: shortlist sizes of a prefix graph (efSearch K and 2K unless spec.efs says);
  // without it, a full-dim graph searched for k at each of spec.efs.
  const full = spec.Ks === undefined;
  const label = full ? `usearch HNSW f32 d=${d}` : `prefix HNSW ${spec.q} m=${spec.m}`;
  for (const shortlistK of spec.Ks ?? [K]) {
    for (const ef of spec.efs ?? [shortlistK, 2 * shortlistK]) {
      const g = PrefixHnsw.view(index, file, { ...options, expansionSearch: ef });
      rows.push({
        ef,
        ...(full ? {} : { K: shortlistK }),
        name: `${label} (M=${spec.M}, efC=${spec.efC}) ef=${ef}${full ? '' : ` K=${shortlistK} -> ${d}`}`,
        build_s,
        bytes,
        ...timed((q) => g.search(q, { shortlistK, k: K })),
      });
    }
  }
} else if (spec.kind === 'pglite') {
  const exact = index.search(queries, { k: K });
  const db = await openVectorDb('pglite:memory');
  try {
    const t = performance.now();
    await writeIndexToDb(db.client, index, { prefixDim: spec.m, maintenanceWorkMem: spec.workMem ?? '1GB' });
    const build_s = since(t);
    const bytes = Number((await db.client.query("SELECT pg_relation_size('mrl_vectors_prefix_hnsw') AS b")).rows[0].b);
    for (const shortlistK of spec.Ks ?? [spec.K]) {
      await searchDb(db.client, queries.subarray(0, 8 * d), { k: K, shortlistK, efSearch: shortlistK });
      const s0 = performance.now();
      const r = await searchDb(db.client, queries, { k: K, shortlistK, efSearch: shortlistK });
      rows.push({
        name: `PGlite pgvector two-stage SQL m=${spec.m} K=${shortlistK} (first ${N} rows)`,
        build_s,
        bytes,
        seconds: since(s0),
        ids: Array.from(r.ids),
        recall: recallAtK(r, exact, K),
      });
    }
  } finally {
    await db.close();
  }
} else {
  throw new Error(`unknown method kind ${spec.kind}`);
}
process.stdout.write(`${JSON.stringify({ rows, N, NQ, dataRss, peakRss: process.resourceUsage().maxRSS * 1024 })}\n`);

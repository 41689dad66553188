#!/usr/bin/env node
// Matryoshka retrieval, every method in its own child process (bench/retrieval-method.mjs for
// ours, bench/faiss_method.py for FAISS) on the same vectors in the same run, so each row's
// peak RSS (ru_maxrss) is that method's alone: the data it loads plus what it builds. Prints
// queries/s (1 search thread), recall@10 against our exact search, build seconds (on
// --build-threads), first-stage bytes, peak RSS and the RSS of the loaded data.
//
//   pnpm run build && node bench/retrieval-isolated.mjs [--n 100000] [--d 256] [--queries 200]
//     [--classes 1000] [--seed 1] [--reps 3] [--m 64] [--shortlist 100] [--build-threads 2]
//     [--efc 64] [--full-efs 64,128] [--connectivity 16 (prefix graphs; a list, e.g. 8,16)] [--full-m 16] [--faiss-m 32]
//     [--pglite-n 20000 | 0] [--methods exact-js,int8,binary,chunked,full,f32,f16,i8,b1,faiss-flat,faiss-hnsw,faiss-prefix,pglite]
//     [--vectors db.npy [--query-vectors q.npy]] [--child-timeout 1500] [--json out.json]
//     [--pairs 0 (alternating re-timings of the two rows the two-stage target compares)]
//   Without --query-vectors, the last --queries rows of --vectors are the queries.
//
// "first stage MiB" is what the first stage searches: the float matrix (flat), the int8 codes
// and scales or sign bits (flat scans), what ChunkedIndex holds in memory, the serialized HNSW
// graph with its (quantised) prefix vectors (usearch file), FAISS's serialized index (vectors +
// links), pgvector's HNSW index (pg_relation_size). Every two-stage method also keeps the full
// float32 vectors for the re-rank (N x d x 4 bytes; ChunkedIndex reads them from its file).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { recallAtK } from '@mrl/adaptive';
import { readNpy, synthetic, writeNpy } from './retrieval-data.mjs';
import { argWithValue as arg } from './args.mjs';

const K = 10;
const NQ = Number(arg('queries', 200));
const REPS = Number(arg('reps', 3));
const M = Number(arg('m', 64));
// K, the shortlist of the two-stage methods; a list (e.g. 50,100) runs the prefix graphs at each.
const SHORTLISTS = arg('shortlist', '100').split(',').map(Number);
const SHORTLIST = SHORTLISTS[0];
// efSearch of the full-dim graphs (usearch and FAISS): the fastest one at recall >= 0.99 counts.
const FULL_EFS = arg('full-efs', '64,128').split(',').map(Number);
const THREADS = Number(arg('build-threads', 2));
const EFC = Number(arg('efc', 64));
const PREFIX_MS = arg('connectivity', '16').split(',').map(Number);
const FULL_M = Number(arg('full-m', 16));
const FAISS_M = Number(arg('faiss-m', 32));
const PG_N = Number(arg('pglite-n', 20000));
const TIMEOUT = Number(arg('child-timeout', 1500));
const PYTHON = arg('python', '/usr/bin/python3');
const t0 = performance.now();
const load0 = loadavg();

const tmp = mkdtempSync(join(arg('tmp', tmpdir()), 'mrl-isolated-'));
let source;
let N;
let d;
{
  const file = arg('vectors', undefined);
  if (file === undefined) {
    const n = Number(arg('n', 100_000));
    d = Number(arg('d', 256));
    const s = synthetic({ n, nq: NQ, d, classes: Number(arg('classes', 1000)), seed: Number(arg('seed', 1)) });
    writeNpy(join(tmp, 'db.npy'), s.vectors, [n, d]);
    writeNpy(join(tmp, 'queries.npy'), s.queries, [NQ, d]);
    N = n;
    source = `synthetic Matryoshka-like (spread (1 + j/4)^-0.75, ${arg('classes', 1000)} classes)`;
  } else {
    const { data, shape } = readNpy(file);
    d = shape[1];
    const qFile = arg('query-vectors', undefined);
    if (qFile !== undefined) {
      const q = readNpy(qFile);
      if (q.shape[1] !== d) throw new Error(`${qFile} has dim ${q.shape[1]}, ${file} has ${d}`);
      N = shape[0];
      writeNpy(join(tmp, 'db.npy'), data, [N, d]);
      writeNpy(join(tmp, 'queries.npy'), q.data.slice(0, NQ * d), [NQ, d]);
      source = `${file} (queries: first ${NQ} of ${qFile})`;
    } else {
      N = shape[0] - NQ;
      writeNpy(join(tmp, 'db.npy'), data.subarray(0, N * d), [N, d]);
      writeNpy(join(tmp, 'queries.npy'), data.subarray(N * d), [NQ, d]);
      source = `${file} (queries: its last ${NQ} rows)`;
    }
  }
}
const wanted = new Set(
  arg(
    'methods',
    `${N <= 200_000 ? 'exact-js,' : ''}int8,binary,chunked,full,f32,f16,i8,b1,faiss-flat,faiss-hnsw,faiss-prefix,pglite`,
  ).split(','),
);

const specs = [['exact', { kind: 'exact' }]];
if (wanted.has('exact-js')) specs.push(['exact-js', { kind: 'exact', native: false }]);
if (wanted.has('int8')) specs.push(['int8', { kind: 'int8-scan', m: M, K: [SHORTLIST, 2 * SHORTLIST] }]);
if (wanted.has('binary')) specs.push(['binary', { kind: 'binary-scan', m: d, K: [4 * SHORTLIST, 8 * SHORTLIST] }]);
if (wanted.has('chunked')) {
  specs.push(['chunked', { kind: 'chunked', first: { kind: 'int8', dim: M, scale: 'per-dim' }, K: [SHORTLIST] }]);
  specs.push(['chunked', { kind: 'chunked', first: { kind: 'binary', dim: d }, K: [4 * SHORTLIST] }]);
}
if (wanted.has('full'))
  specs.push(['full', { kind: 'hnsw', m: d, q: 'f32', M: FULL_M, efC: EFC, efs: FULL_EFS, threads: THREADS }]);
// One graph per quantisation and M, searched at every shortlist K (efSearch K and 2K).
for (const q of ['f32', 'f16', 'i8', 'b1']) {
  if (!wanted.has(q)) continue;
  for (const pm of PREFIX_MS) {
    specs.push([q, { kind: 'hnsw', m: q === 'b1' ? d : M, q, M: pm, efC: EFC, Ks: SHORTLISTS, threads: THREADS }]);
  }
}
if (wanted.has('faiss-flat')) specs.push(['faiss', { kind: 'flat' }]);
if (wanted.has('faiss-hnsw'))
  specs.push(['faiss', { kind: 'hnsw', M: FAISS_M, efC: EFC, efs: FULL_EFS, threads: THREADS }]);
if (wanted.has('faiss-prefix')) {
  specs.push([
    'faiss',
    { kind: 'prefix-hnsw', M: FAISS_M, efC: EFC, m: M, K: SHORTLIST, efs: [SHORTLIST], threads: THREADS },
  ]);
}
if (wanted.has('pglite') && PG_N > 0)
  specs.push(['pglite', { kind: 'pglite', n: Math.min(N, PG_N), m: M, K: SHORTLIST, Ks: SHORTLISTS, reps: 1 }]);

console.log(
  `# ${source}: N=${N}, d=${d}, ${NQ} queries, k=${K}, cosine; ${cpus().length} cores (${cpus()[0]?.model ?? '?'}); searches on 1 thread, graph builds on ${THREADS}; load average at start ${load0.map((x) => x.toFixed(1)).join(' ')}`,
);
const rows = [];
let base;
// Graphs are kept in tmp so that --pairs can time them again without building.
specs.forEach(([tag, spec], i) => {
  if (spec.kind === 'hnsw' || spec.kind === 'prefix-hnsw')
    spec[tag === 'faiss' ? 'indexFile' : 'graphFile'] = join(tmp, `graph-${i}`);
});
function runChild(tag, spec) {
  const full = { reps: REPS, k: K, tmp, ...spec };
  const isFaiss = tag === 'faiss';
  const r = spawnSync(
    isFaiss ? PYTHON : process.execPath,
    isFaiss
      ? [new URL('./faiss_method.py', import.meta.url).pathname, tmp, JSON.stringify(full)]
      : [new URL('./retrieval-method.mjs', import.meta.url).pathname, tmp, JSON.stringify(full)],
    {
      maxBuffer: 1 << 28,
      timeout: TIMEOUT * 1000,
      env: { ...process.env, OMP_NUM_THREADS: String(THREADS), OPENBLAS_NUM_THREADS: '1' },
    },
  );
  if (r.status !== 0) {
    const why =
      r.error?.code === 'ETIMEDOUT'
        ? `did not finish in ${TIMEOUT} s`
        : String(r.stderr).trim().split('\n').slice(-3).join(' / ');
    return { failed: why };
  }
  return JSON.parse(String(r.stdout).trim().split('\n').pop());
}
for (const [tag, spec] of specs) {
  const started = performance.now();
  const out = runChild(tag, spec);
  const wall = (performance.now() - started) / 1000;
  if (out.failed) {
    console.log(`# ${JSON.stringify(spec)}: failed (${out.failed})`);
    rows.push({ name: `${spec.kind} ${JSON.stringify(spec)}`, failed: out.failed });
    continue;
  }
  for (const row of out.rows) {
    const result = { numQueries: NQ, k: K, ids: Int32Array.from(row.ids) };
    if (base === undefined) base = result;
    const recall = row.recall ?? recallAtK(result, base, K);
    const entry = {
      ...row,
      tag,
      spec,
      result,
      recall,
      qps: NQ / row.seconds,
      peakRss: out.peakRss,
      dataRss: out.dataRss,
    };
    if (out.faiss) entry.faiss = out.faiss;
    rows.push(entry);
    process.stderr.write(
      `  ${row.name}: ${entry.qps.toFixed(1)} q/s, recall ${recall.toFixed(3)}, build ${row.build_s.toFixed(1)} s, ${(row.bytes / 2 ** 20).toFixed(1)} MiB, peak RSS ${(out.peakRss / 2 ** 20).toFixed(0)} MiB (${wall.toFixed(0)} s)\n`,
    );
  }
}
const fmt = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const mib = (b) => fmt(b / 2 ** 20, 1);
const header = ['method', 'queries/s', 'recall@10', 'build s', 'first stage MiB', 'peak RSS MiB', 'data RSS MiB'];
const table = rows
  .filter((r) => !r.failed)
  .map((r) => [
    r.name,
    fmt(r.qps, 1),
    fmt(r.recall, 3),
    fmt(r.build_s, 1),
    mib(r.bytes),
    mib(r.peakRss),
    mib(r.dataRss),
  ]);
const widths = header.map((h, c) => Math.max(h.length, ...table.map((row) => row[c].length)));
const line = (cells) =>
  `| ${cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w, c) => (c === 0 ? ':' : '') + '-'.repeat(w + 1) + (c === 0 ? '' : ':')).join('|')}|`);
for (const row of table) console.log(line(row));
for (const r of rows.filter((x) => x.failed)) console.log(`# not measured: ${r.name}: ${r.failed}`);
const faissVersion = rows.find((r) => r.faiss)?.faiss;
if (faissVersion)
  console.log(
    `# FAISS ${faissVersion} (Debian python3-faiss); re-rank vectors (not in "first stage"): ${mib(N * d * 4)} MiB`,
  );

/**
 * --pairs P: P alternating timings (each in a fresh child, best of --reps, the graphs opened
 * from the files the table's run saved) of two rows at their efSearch; on a shared machine the
 * median of neighbouring ratios is steadier than one ratio of rows measured minutes apart.
 */
function pairs(ours, theirs) {
  const P = Number(arg('pairs', 0));
  if (P <= 0 || ours.ef === undefined || theirs.ef === undefined) return;
  const again = (row) => {
    const only = row.K !== undefined ? { Ks: [row.K] } : {};
    const out = runChild(row.tag, { ...row.spec, ...only, efs: [row.ef], build_s: row.build_s });
    if (out.failed) throw new Error(`paired timing of ${row.name} failed: ${out.failed}`);
    return out.rows[0];
  };
  const ratios = [];
  const cpuRatios = [];
  for (let p = 0; p < P; p++) {
    const a = again(ours);
    const b = again(theirs);
    ratios.push(b.seconds / a.seconds);
    cpuRatios.push(b.cpu_seconds / a.cpu_seconds);
    console.log(
      `# pair ${p + 1}: ${(NQ / a.seconds).toFixed(1)} vs ${(NQ / b.seconds).toFixed(1)} q/s, QPS ratio ${(b.seconds / a.seconds).toFixed(2)}; per CPU second ${(NQ / a.cpu_seconds).toFixed(1)} vs ${(NQ / b.cpu_seconds).toFixed(1)}, ratio ${(b.cpu_seconds / a.cpu_seconds).toFixed(2)}`,
    );
  }
  const median = (list) => {
    const s = [...list].sort((x, y) => x - y);
    return `${s[Math.floor(P / 2)].toFixed(2)} (min ${s[0].toFixed(2)}, max ${s[P - 1].toFixed(2)})`;
  };
  console.log(
    `# ${P} alternating pairs, ${ours.name} vs ${theirs.name}: median QPS ratio ${median(ratios)}; median ratio of queries per CPU second ${median(cpuRatios)}`,
  );
}

// The targets, read off this run.
const byName = (re) => rows.filter((r) => !r.failed && re.test(r.name));
const ours = byName(/^exact flat, ONNX/)[0];
const faissFlat = byName(/IndexFlatIP/)[0];
if (ours && faissFlat) {
  console.log(
    `# exact: ours ${fmt(ours.qps, 1)} q/s vs FAISS IndexFlatIP ${fmt(faissFlat.qps, 1)} q/s: time ratio ${fmt(faissFlat.qps / ours.qps, 2)} (target <= 1.25)`,
  );
}
const good = (r) => r.recall >= 0.99;
const best = (list) => list.filter(good).sort((a, b) => b.qps - a.qps)[0];
const faissHnsw = best(byName(/IndexHNSWFlat/));
const twoStage = byName(/^(prefix HNSW|int8|binary|ChunkedIndex)/);
if (faissHnsw) {
  const small = twoStage.filter((r) => r.bytes * 4 <= faissHnsw.bytes);
  const pick = best(small.filter((r) => r.qps >= faissHnsw.qps)) ?? best(small) ?? best(twoStage);
  if (pick) {
    pairs(pick, faissHnsw);
    console.log(
      `# at recall@10 >= 0.99: ${pick.name} ${fmt(pick.qps, 1)} q/s, ${mib(pick.bytes)} MiB vs ${faissHnsw.name} ${fmt(faissHnsw.qps, 1)} q/s, ${mib(faissHnsw.bytes)} MiB: ${fmt(pick.qps / faissHnsw.qps, 2)}x the QPS, first stage ${fmt(faissHnsw.bytes / pick.bytes, 1)}x smaller (targets >= 1 and >= 4)`,
    );
  }
} else {
  console.log('# no FAISS HNSW row reached recall@10 >= 0.99 in this run');
}
console.log(
  `# load average at end ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}; total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
rmSync(tmp, { recursive: true, force: true });
const jsonOut = arg('json', undefined);
if (jsonOut)
  writeFileSync(
    jsonOut,
    JSON.stringify(
      rows.map(({ result, ids, ...r }) => r),
      null,
      1,
    ),
  );

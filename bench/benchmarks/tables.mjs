// Turns benchmark runs' metrics.json files into the per-dim tables (mean ± half-range over seeds,
// a column per method) and one SVG chart per benchmark and metric (a line per method, the mean),
// and prints the checks of the paper's claims that these numbers can answer.
//
//   node bench/benchmarks/tables.mjs --name glyphs --out docs/benchmarks \
//     --runs runs/glyphs-mrl-s0,runs/glyphs-mrl-s1 [--efficient runs/glyphs-mrle-s0,runs/glyphs-mrle-s1]
//
// --runs: runs with the Matryoshka model and its baselines (one per seed); --efficient: MRL-E runs
// (their 'mrl' series becomes the MRL-E line). --drop 0:FF@64,0:SVD leaves out values of a run
// (its index in --runs, or e<index> in --efficient) that a failed training made meaningless, and says so under the tables. Writes <out>/<name>-<metric>.svg and
// <out>/<name>.md (the tables and the checks), and prints the markdown.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '@mrl/core';
import { renderChartSvg } from '../../apps/cli/dist/chart.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const name = flag('name', 'benchmark');
const out = flag('out', 'docs/benchmarks');
const list = (value) => (value === undefined || value === '' ? [] : value.split(','));
const runs = list(flag('runs'));
const efficient = list(flag('efficient'));
// --mrl-label MRL-E: the runs' Matryoshka model has the shared head (text classify files default to it).
const mrlLabel = flag('mrl-label', 'MRL');
const drops = list(flag('drop')).map((item) => {
  const [run, rest] = item.split(':');
  const [method, dim] = rest.split('@');
  return { run, method, dim: dim === undefined ? undefined : Number(dim) };
});
const dropped = (run, method, dim) =>
  drops.some((x) => x.run === String(run) && x.method === method && (x.dim === undefined || x.dim === dim));
if (runs.length === 0) throw new Error('--runs names no run folder');

const load = async (dir) => JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8')).table;
const tables = await Promise.all(runs.map(load));
const efficientTables = await Promise.all(efficient.map(load));
const first = tables[0];

// method label -> dim -> metric key -> values over seeds
const methods = new Map();
const add = (label, series, run) => {
  const byDim = methods.get(label) ?? new Map();
  for (const row of series.rows) {
    if (dropped(run, label, row.dim)) continue;
    const byMetric = byDim.get(row.dim) ?? new Map();
    for (const [key, value] of Object.entries(row.values)) {
      if (value === undefined || value === null) continue;
      byMetric.set(key, [...(byMetric.get(key) ?? []), value]);
    }
    byDim.set(row.dim, byMetric);
  }
  methods.set(label, byDim);
};
for (const [i, table] of tables.entries())
  for (const s of table.series)
    add(s.key === 'rand' || s.key === 'trunc' ? 'Trunc' : s.key === 'mrl' ? mrlLabel : s.label, s, i);
for (const [i, table] of efficientTables.entries())
  for (const s of table.series) if (s.key === 'mrl') add('MRL-E', s, `e${i}`);

const dims = [...new Set([...methods.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
const values = (method, dim, key) => methods.get(method)?.get(dim)?.get(key) ?? [];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const scale = (kind) => (kind === 'percent' ? 100 : 1);
const cell = (xs, kind) => {
  if (xs.length === 0) return '–';
  const s = scale(kind);
  const digits = kind === 'percent' ? 2 : 4;
  const m = (s * mean(xs)).toFixed(digits);
  if (xs.length === 1) return m;
  return `${m} ± ${((s * (Math.max(...xs) - Math.min(...xs))) / 2).toFixed(digits)}`;
};

const lines = [];
const seedNote = `${tables.length} seed${tables.length === 1 ? '' : 's'}${efficientTables.length > 0 ? ` (MRL-E: ${efficientTables.length})` : ''}; mean ± half the range over seeds; a cell without ± has one seed`;
lines.push(`${first.data}, ${first.model}, d=${first.embeddingDim}: ${first.task}. ${seedNote}.`, '');
const charts = [];
for (const metric of first.metrics) {
  const present = [...methods.keys()].filter((m) => dims.some((d) => values(m, d, metric.key).length > 0));
  if (present.length === 0) continue;
  lines.push(`**${metric.header}**`, '');
  lines.push(`| dim | ${present.join(' | ')} |`, `|---:|${present.map(() => '---:').join('|')}|`);
  for (const d of dims)
    lines.push(`| ${d} | ${present.map((m) => cell(values(m, d, metric.key), metric.kind)).join(' | ')} |`);
  const ref = first.references?.find((r) => r.values[metric.key] !== undefined);
  if (ref) lines.push('', `${ref.label}: ${cell([ref.values[metric.key]], metric.kind)}`);
  lines.push('');
  const svg = renderChartSvg(
    present.map((m) => ({
      label: m,
      points: dims
        .filter((d) => values(m, d, metric.key).length > 0)
        .map((d) => ({ dim: d, value: mean(values(m, d, metric.key)) })),
    })),
    { title: `${name}: ${metric.header} vs dim (mean of seeds)`, yLabel: metric.header },
  );
  const file = join(out, `${name}-${metric.key}.svg`);
  await writeFileAtomically(file, svg);
  charts.push(file);
}

// The paper's claims that per-dim tables answer: MRL >= FF at every dim (per seed and on the mean),
// MRL 1-NN above SVD at dims <= 16, MRL-E close to MRL.
const checks = [];
const diffs = (a, b, key, at) =>
  at.map((d) => {
    const x = values(a, d, key);
    const y = values(b, d, key);
    // Per-seed differences only where both methods kept every seed (a dropped value shifts the pairing).
    const n = x.length === y.length ? x.length : 0;
    const perSeed = Array.from({ length: n }, (_, i) => x[i] - y[i]);
    return { dim: d, mean: x.length === 0 || y.length === 0 ? Number.NaN : mean(x) - mean(y), perSeed };
  });
const fmt = (r, key) =>
  `${r.dim}: ${(100 * r.mean).toFixed(2)}${r.perSeed.length > 1 ? ` (${r.perSeed.map((v) => (100 * v).toFixed(2)).join(', ')})` : ''}`;
for (const [a, b, key, at, what] of [
  ['MRL', 'FF', 'top1', dims, 'MRL − FF, linear top-1 points'],
  ['MRL', 'FF', 'nnTop1', dims, 'MRL − FF, 1-NN points'],
  ['MRL', 'SVD', 'nnTop1', dims.filter((d) => d <= 16), 'MRL − SVD, 1-NN points at dims ≤ 16'],
  ['MRL', 'SVD', 'top1', dims.filter((d) => d <= 16), 'MRL − SVD, linear top-1 points at dims ≤ 16'],
  ['MRL-E', 'MRL', 'top1', dims, 'MRL-E − MRL, linear top-1 points'],
  ['MRL-E', 'FF', 'top1', dims, 'MRL-E − FF, linear top-1 points'],
  ['MRL-E', 'SVD', 'nnTop1', dims.filter((d) => d <= 16), 'MRL-E − SVD, 1-NN points at dims ≤ 16'],
  ['MRL-E', 'MRL', 'nnTop1', dims, 'MRL-E − MRL, 1-NN points'],
  ['MRL', 'Untrained', 'top1', dims, 'MRL − Untrained (random features), linear top-1 points'],
  ['MRL', 'Untrained', 'nnTop1', dims, 'MRL − Untrained (random features), 1-NN points'],
  // Align runs: retrieval both ways.
  ['MRL', 'FF', 'i2t10', dims, 'MRL − FF, image→text recall@10 points'],
  ['MRL', 'FF', 't2i10', dims, 'MRL − FF, text→image recall@10 points'],
  ['MRL', 'FF', 'i2tMap10', dims, 'MRL − FF, image→text mAP@10 (x100)'],
  ['MRL', 'FF', 't2iMap10', dims, 'MRL − FF, text→image mAP@10 (x100)'],
  ['MRL', 'SVD', 'i2t10', dims.filter((d) => d <= 16), 'MRL − SVD, image→text recall@10 points at dims ≤ 16'],
  ['MRL', 'SVD', 't2i10', dims.filter((d) => d <= 16), 'MRL − SVD, text→image recall@10 points at dims ≤ 16'],
  ['MRL', 'Trunc', 'i2t10', dims, 'MRL − Trunc, image→text recall@10 points'],
  ['MRL', 'Untrained', 'i2t10', dims, 'MRL − Untrained (random features), image→text recall@10 points'],
  // Text pairs runs (example → gloss): recall@10 and mAP@10 of each query's own gloss.
  ['MRL', 'FF', 'recall10', dims, 'MRL − FF, recall@10 points'],
  ['MRL', 'FF', 'map10', dims, 'MRL − FF, mAP@10 (x100)'],
  ['MRL', 'SVD', 'recall10', dims.filter((d) => d <= 16), 'MRL − SVD, recall@10 points at dims ≤ 16'],
  ['MRL', 'Trunc', 'recall10', dims, 'MRL − Trunc, recall@10 points'],
  ['MRL', 'Untrained', 'recall10', dims, 'MRL − Untrained (random features), recall@10 points'],
]) {
  const rows = diffs(a, b, key, at).filter((r) => !Number.isNaN(r.mean));
  if (rows.length === 0) continue;
  const allSeeds = rows.flatMap((r) => (r.perSeed.length > 0 ? r.perSeed : [r.mean]));
  const wins = allSeeds.filter((v) => v >= 0).length;
  checks.push(
    `- ${what} per dim (mean; per seed): ${rows.map((r) => fmt(r, key)).join('; ')} — ${a} ahead in ${wins} of ${allSeeds.length} comparisons (per seed where both have every seed)`,
  );
}
if (drops.length > 0)
  lines.push(
    `Left out (failed training, see the text): ${drops.map((x) => `${x.run.startsWith('e') ? efficient[Number(x.run.slice(1))] : runs[Number(x.run)]} ${x.method}${x.dim === undefined ? '' : ` at ${x.dim}`}`).join('; ')}.`,
    '',
  );
if (checks.length > 0)
  lines.push('Checks (differences in points; positive: the first method is ahead):', '', ...checks, '');
lines.push(`Charts: ${charts.map((c) => `\`${c}\``).join(', ')}`, '');
const markdown = `${lines.join('\n')}\n`;
await writeFileAtomically(join(out, `${name}.md`), markdown);
process.stdout.write(markdown);

import { MrlError } from '../errors.js';
import { formatTable } from './table.js';

/**
 * The per-dim table of a run, as data: every `fit` (vision, text, align, a plug-in) returns one,
 * `metrics.json` keeps it, and `fit`, `eval` and `report` print it with the one function below,
 * so the three never disagree on heading, column order or model order.
 */
export interface RunTable {
  /** What was evaluated on, e.g. `fashion-mnist` or `wordnet (lexnames)` or a file name. */
  data: string;
  /** Encoder name, e.g. `mlp` or `bert-tiny`. */
  model: string;
  /** What the numbers measure, e.g. `classify: top-1 on 1000 held-out glosses`. */
  task: string;
  /** Embedding size d of the MRL model. */
  embeddingDim: number;
  /** The metrics of every series, in column order. */
  metrics: readonly TableMetric[];
  /** The MRL model first, then its baselines; each series in nesting order of its rows. */
  series: readonly TableSeries[];
  /**
   * Trivial references a model must beat (majority class, most frequent token, chance), with
   * the value of each metric they have. Printed under the table.
   */
  references?: readonly TableReference[];
  /** Extra lines printed under the table (e.g. how a baseline was made). */
  notes?: readonly string[];
}

export interface TableMetric {
  /** Key in each row, e.g. `top1`. */
  key: string;
  /** Column header after the series label, e.g. `top-1 %`. */
  header: string;
  /** `percent`: a fraction shown x100 with two decimals; `score`: four decimals as is. */
  kind: 'percent' | 'score';
  /** Higher is better (default true). */
  higherIsBetter?: boolean;
}

export interface TableSeries {
  /** Stable key, e.g. `mrl`, `ff`, `pca`, `trunc`. */
  key: string;
  /** Column label, e.g. `MRL`, `FF`. */
  label: string;
  rows: readonly TableRow[];
}

export interface TableRow {
  dim: number;
  values: Readonly<Record<string, number | undefined>>;
}

export interface TableReference {
  label: string;
  values: Readonly<Record<string, number>>;
}

function formatValue(metric: TableMetric, value: number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return metric.kind === 'percent' ? (100 * value).toFixed(2) : value.toFixed(4);
}

/** The heading line of a table: data set, model, d, task and the models compared. */
export function runTableHeading(table: RunTable): string {
  const models = table.series.map((s) => s.label).join(' vs ');
  return `${table.data}, ${table.model}, d=${table.embeddingDim}, ${models}: ${table.task}`;
}

/** Every dim that any series has a row for, ascending. */
export function runTableDims(table: RunTable): number[] {
  return [...new Set(table.series.flatMap((s) => s.rows.map((r) => r.dim)))].sort((a, b) => a - b);
}

/**
 * Text form: heading, one row per dim (columns: each series' metrics in order), then the
 * references and notes. The one formatter `fit`, `eval` and `report` use.
 */
export function formatRunTable(table: RunTable): string {
  const dims = runTableDims(table);
  const columns = [
    { header: 'dim', value: (d: number) => String(d) },
    ...table.series.flatMap((s) =>
      table.metrics.map((m) => ({
        header: `${s.label} ${m.header}`,
        value: (d: number) => formatValue(m, s.rows.find((r) => r.dim === d)?.values[m.key]),
      })),
    ),
  ];
  const lines = [runTableHeading(table), formatTable(dims, columns)];
  for (const ref of table.references ?? []) {
    const parts = table.metrics
      .filter((m) => ref.values[m.key] !== undefined)
      .map((m) => `${m.header} ${formatValue(m, ref.values[m.key])}`);
    lines.push(`baseline (${ref.label}): ${parts.join(', ')}`);
  }
  for (const note of table.notes ?? []) lines.push(note);
  return lines.join('\n');
}

/** CSV form: `dim,<series>_<metric>,...`, one row per dim. */
export function runTableCsv(table: RunTable): string {
  const dims = runTableDims(table);
  const header = ['dim', ...table.series.flatMap((s) => table.metrics.map((m) => `${s.key}_${m.key}`))];
  const rows = dims.map((d) =>
    [
      d,
      ...table.series.flatMap((s) => table.metrics.map((m) => s.rows.find((r) => r.dim === d)?.values[m.key] ?? '')),
    ].join(','),
  );
  return [header.join(','), ...rows].join('\n');
}

/**
 * Checks a table read from a file: every metric key a string, every row a finite number or
 * absent. A NaN never reaches a printed table: it is refused here with the series and dim named.
 */
export function validateRunTable(raw: unknown, where: string): RunTable {
  const bad = (what: string): MrlError =>
    new MrlError(
      'corrupt-file',
      `${where}: the per-dim table ${what}.`,
      'Run mrl-cli fit again for this run folder to rewrite it.',
    );
  if (typeof raw !== 'object' || raw === null) throw bad('is missing');
  const t = raw as Partial<RunTable>;
  if (typeof t.data !== 'string' || typeof t.model !== 'string' || typeof t.task !== 'string')
    throw bad('has no data, model or task');
  if (typeof t.embeddingDim !== 'number') throw bad('has no embeddingDim');
  if (!Array.isArray(t.metrics) || t.metrics.length === 0) throw bad('has no metrics');
  if (!Array.isArray(t.series) || t.series.length === 0) throw bad('has no series');
  for (const s of t.series) {
    if (typeof s?.key !== 'string' || !Array.isArray(s.rows)) throw bad('has a malformed series');
    for (const r of s.rows) {
      if (typeof r?.dim !== 'number') throw bad(`has a row without dim in series '${s.key}'`);
      for (const [k, v] of Object.entries(r.values ?? {})) {
        if (v !== null && v !== undefined && !Number.isFinite(v))
          throw bad(`has a non-finite ${k} (${String(v)}) for ${s.label} at dim ${r.dim}`);
      }
    }
  }
  return t as RunTable;
}

/**
 * Refuses a table with a non-finite value before it is printed or saved: a NaN loss or an empty
 * split must never be averaged into a table.
 */
export function assertFiniteRunTable(table: RunTable): void {
  for (const s of table.series)
    for (const r of s.rows)
      for (const [k, v] of Object.entries(r.values)) {
        if (v !== undefined && !Number.isFinite(v)) {
          throw new MrlError(
            'non-finite-value',
            `the ${s.label} model's ${k} at dim ${r.dim} is ${String(v)} (${table.data}, ${table.model}).`,
            'The evaluation split may be empty or training diverged: check --test-limit and the loss in the log, lower --lr, or set --clip-norm.',
          );
        }
      }
}

/** Series sorted MRL first, then by key with numeric suffixes in nesting order (ff-8 before ff-16). */
export function sortSeries<S extends { key: string }>(series: readonly S[]): S[] {
  const rank = (key: string): [number, string, number] => {
    const m = /^(.*?)-?(\d+)$/.exec(key);
    const base = m === null ? key : m[1]!;
    return [base === 'mrl' ? 0 : 1, base, m === null ? -1 : Number(m[2])];
  };
  return [...series].sort((a, b) => {
    const [ra, ba, na] = rank(a.key);
    const [rb, bb, nb] = rank(b.key);
    return ra - rb || ba.localeCompare(bb) || na - nb;
  });
}

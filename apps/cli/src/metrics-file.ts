import { join } from 'node:path';
import { MrlError, sortSeries, validateRunTable, type RunTable, type TableSeries } from '@mrl/core';
import { readJsonFile } from './run-folder.js';

/** A run's metrics.json: its per-dim table (the one `fit` printed) and where it came from. */
export interface RunMetrics {
  path: string;
  table: RunTable;
}

const LEGACY_LABELS: Record<string, string> = { mrl: 'MRL', ff: 'FF', svd: 'SVD', rand: 'Rand' };

interface LegacyRow {
  dim: number;
  top1?: number;
  nnTop1?: number;
  map10?: number;
}

function legacyRows(value: unknown): LegacyRow[] | undefined {
  const items = Array.isArray(value)
    ? value
    : typeof value === 'object' && value !== null
      ? Object.values(value)
      : undefined;
  if (items === undefined || items.length === 0) return undefined;
  if (!items.every((r) => typeof r === 'object' && r !== null && typeof (r as LegacyRow).dim === 'number'))
    return undefined;
  return (items as LegacyRow[]).slice().sort((a, b) => a.dim - b.dim);
}

/** A vision metrics.json written before runs kept their table: rebuilt from its per-model rows. */
function legacyTable(raw: Record<string, unknown>, path: string): RunTable {
  const mrl = legacyRows(raw.mrl);
  if (mrl === undefined) {
    throw new MrlError('corrupt-file', `${path} has no per-dim table.`, 'Run mrl-cli fit again for this run folder.');
  }
  const series: TableSeries[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'robustness') continue;
    const rows = legacyRows(value);
    if (rows === undefined) continue;
    const label = key === 'mrl' && raw.head === 'shared' ? 'MRL-E' : (LEGACY_LABELS[key] ?? key.toUpperCase());
    series.push({
      key,
      label,
      rows: rows.map((r) => ({ dim: r.dim, values: { top1: r.top1, nnTop1: r.nnTop1, map10: r.map10 } })),
    });
  }
  return {
    data: String(raw.data ?? '?'),
    model: String(raw.model ?? '?'),
    task: 'classify, test set',
    embeddingDim: Math.max(...mrl.map((r) => r.dim)),
    metrics: [
      { key: 'top1', header: 'top-1 %', kind: 'percent' },
      { key: 'nnTop1', header: '1-NN %', kind: 'percent' },
      { key: 'map10', header: 'mAP@10', kind: 'score' },
    ],
    series: sortSeries(series),
  };
}

/** Reads `<run-dir>/metrics.json` and checks its table (finite numbers, every field present). */
export async function readRunMetrics(runDir: string): Promise<RunMetrics> {
  const path = join(runDir, 'metrics.json');
  const raw = await readJsonFile<Record<string, unknown>>(
    path,
    'the metrics file',
    'Run mrl-cli fit with this --run-dir first (metrics.json is written at the end of training).',
  );
  const table = raw.table === undefined ? legacyTable(raw, path) : validateRunTable(raw.table, path);
  return { path, table };
}

import { join } from 'node:path';
import { MrlError } from '@mrl/core';
import { readJsonFile } from './run-folder.js';

/** Quality of one model at one dim, as fit writes it to metrics.json. */
export interface DimMetrics {
  dim: number;
  top1?: number;
  nnTop1?: number;
  map10?: number;
}

/** One curve: the MRL model or a baseline. */
export interface MetricSeries {
  key: string;
  label: string;
  rows: DimMetrics[];
}

export interface RunMetrics {
  path: string;
  model: string;
  data: string;
  head: string;
  dims: number[];
  series: MetricSeries[];
}

const LABELS: Record<string, string> = { mrl: 'MRL', ff: 'FF', svd: 'SVD', rand: 'Rand' };

function asRows(value: unknown): DimMetrics[] | undefined {
  const items = Array.isArray(value)
    ? value
    : typeof value === 'object' && value !== null
      ? Object.values(value)
      : undefined;
  if (items === undefined || items.length === 0) return undefined;
  if (!items.every((r) => typeof r === 'object' && r !== null && typeof (r as DimMetrics).dim === 'number'))
    return undefined;
  return (items as DimMetrics[]).slice().sort((a, b) => a.dim - b.dim);
}

/** Reads `<run-dir>/metrics.json`: the MRL rows and every baseline present (ff, svd, rand, ...). */
export async function readRunMetrics(runDir: string): Promise<RunMetrics> {
  const path = join(runDir, 'metrics.json');
  const raw = await readJsonFile<Record<string, unknown>>(
    path,
    'the metrics file',
    'Run mrl-cli fit with this --run-dir first (metrics.json is written at the end of training).',
  );
  const series: MetricSeries[] = [];
  const mrl = asRows(raw.mrl);
  if (mrl === undefined) {
    throw new MrlError(
      'corrupt-file',
      `${path} has no per-dim 'mrl' rows.`,
      'Run mrl-cli fit again for this run folder.',
    );
  }
  series.push({ key: 'mrl', label: raw.head === 'shared' ? 'MRL-E' : 'MRL', rows: mrl });
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'mrl' || key === 'robustness') continue;
    const rows = asRows(value);
    if (rows !== undefined) series.push({ key, label: LABELS[key] ?? key.toUpperCase(), rows });
  }
  return {
    path,
    model: String(raw.model ?? '?'),
    data: String(raw.data ?? '?'),
    head: String(raw.head ?? 'separate'),
    dims: mrl.map((r) => r.dim),
    series,
  };
}

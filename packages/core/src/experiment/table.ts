import { join } from 'node:path';
import { writeFileAtomically } from '../io/atomic.js';
import type { TableSeries } from '../evaluate/run-table.js';

/**
 * One series of a run table from per-dim rows: `values` picks the metrics of a row.
 *
 * @example
 * ```ts
 * dimSeries('ff', 'FF', ffRows, (r) => ({ top1: r.top1 }));
 * ```
 */
export function dimSeries<R extends { dim: number }>(
  key: string,
  label: string,
  rows: Iterable<R>,
  values: (row: R) => Record<string, number | undefined>,
): TableSeries {
  return { key, label, rows: [...rows].map((r) => ({ dim: r.dim, values: values(r) })) };
}

/** Writes `<runDir>/metrics.json` through the checked atomic writer. */
export async function writeRunMetrics(runDir: string, metrics: Record<string, unknown>): Promise<void> {
  await writeFileAtomically(join(runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
}

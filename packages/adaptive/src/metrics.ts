import { MrlError } from '@mrl/core/errors';
import { assertIntInRange } from './validate.js';

/** The part of a search result the metrics read: `k` row ids per query, best first. */
export interface RankedHits {
  readonly numQueries: number;
  readonly k: number;
  /** [numQueries, k] row indices. */
  readonly ids: Int32Array | readonly number[];
}

function checkHits(name: string, hits: RankedHits): void {
  assertIntInRange(`${name}.numQueries`, hits.numQueries, 1);
  assertIntInRange(`${name}.k`, hits.k, 1);
  if (hits.ids.length !== hits.numQueries * hits.k) {
    throw new MrlError(
      'invalid-argument',
      `${name}.ids has ${hits.ids.length} entries, expected numQueries * k = ${hits.numQueries * hits.k}`,
    );
  }
}

/**
 * Mean over queries of |top-k(result) ∩ top-k(exact)| / k: how much of the exact full-dim
 * top-k an approximate search recovers. `exact` must hold at least k hits per query.
 *
 * @example
 * ```ts
 * const exact = index.search(queries, { k: 10 });
 * recallAtK(index.funnel(queries, { ...defaultFunnel(256), k: 10 }), exact, 10); // e.g. 0.97
 * ```
 */
export function recallAtK(result: RankedHits, exact: RankedHits, k = 10): number {
  checkHits('result', result);
  checkHits('exact', exact);
  assertIntInRange('k', k, 1, exact.k);
  if (result.numQueries !== exact.numQueries) {
    throw new MrlError('invalid-argument', `result has ${result.numQueries} queries, exact has ${exact.numQueries}`);
  }
  const kr = Math.min(k, result.k);
  let total = 0;
  for (let q = 0; q < exact.numQueries; q++) {
    const truth = new Set<number>();
    for (let i = 0; i < k; i++) truth.add(exact.ids[q * exact.k + i] as number);
    let found = 0;
    for (let i = 0; i < kr; i++) if (truth.has(result.ids[q * result.k + i] as number)) found++;
    total += found / k;
  }
  return total / exact.numQueries;
}

/**
 * Mean average precision at k against class labels: a hit is relevant when its label equals
 * the query's. AP@k = (1 / min(R, k)) * sum over ranks i <= k of precision@i * rel_i, where R is
 * the number of database rows sharing the query's label. Queries with R = 0 have no defined AP
 * and are left out of the mean (0 is returned when every query is left out).
 *
 * @example
 * ```ts
 * meanAveragePrecisionAtK(index.search(queries, { k: 10 }), queryLabels, index.labels!, 10);
 * ```
 */
export function meanAveragePrecisionAtK(
  result: RankedHits,
  queryLabels: Int32Array | readonly number[],
  dbLabels: Int32Array | readonly number[],
  k = 10,
): number {
  checkHits('result', result);
  assertIntInRange('k', k, 1);
  if (queryLabels.length !== result.numQueries) {
    throw new MrlError(
      'invalid-argument',
      `queryLabels has ${queryLabels.length} entries for ${result.numQueries} queries`,
    );
  }
  const perLabel = new Map<number, number>();
  for (let i = 0; i < dbLabels.length; i++) {
    const l = dbLabels[i] as number;
    perLabel.set(l, (perLabel.get(l) ?? 0) + 1);
  }
  const kk = Math.min(k, result.k);
  let sum = 0;
  let counted = 0;
  for (let q = 0; q < result.numQueries; q++) {
    const label = queryLabels[q] as number;
    const relevantInDb = perLabel.get(label) ?? 0;
    if (relevantInDb === 0) continue;
    let hits = 0;
    let ap = 0;
    for (let i = 0; i < kk; i++) {
      const id = result.ids[q * result.k + i] as number;
      if (id < 0 || id >= dbLabels.length) {
        throw new MrlError(
          'invalid-argument',
          `result id ${id} (query ${q}, rank ${i}) is outside the ${dbLabels.length} database labels`,
        );
      }
      if (dbLabels[id] === label) {
        hits++;
        ap += hits / (i + 1);
      }
    }
    sum += ap / Math.min(relevantInDb, k);
    counted++;
  }
  return counted === 0 ? 0 : sum / counted;
}

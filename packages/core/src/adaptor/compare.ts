import { MrlError } from '../errors.js';
import { retrievalMetrics, type RetrievalMetrics } from '../evaluate/metrics.js';
import { formatTable, percent, type Column } from '../evaluate/table.js';
import { applyAdaptor, type AdaptorWeights } from './adaptor.js';
import { applyPca, fitPca } from './pca.js';
import type { Rows } from './rows.js';

/** Maps full embeddings to vectors whose prefixes are used, e.g. a PCA rotation or an adaptor. */
export type EmbeddingTransform = (rows: Rows) => Rows;

/** What the labels mean: classes (1-NN accuracy) or each query's own document (recall, nDCG). */
export type ComparisonTask = 'classification' | 'retrieval';

export interface MethodMetrics {
  method: string;
  metrics: RetrievalMetrics[];
}

export interface CompareOptions {
  database: Rows;
  queries: Rows;
  databaseLabels: Int32Array;
  queryLabels: Int32Array;
  dims: readonly number[];
  /** Name -> transform, in table order; 'truncation' is usually the identity. */
  transforms: Record<string, EmbeddingTransform>;
  /**
   * Subtract the database mean of each transformed set before comparing cosines (default true):
   * PCA scores are centred by construction, so the others are centred too, like for like.
   */
  center?: boolean;
}

/**
 * Per-dim retrieval metrics of several ways to shorten the same embeddings: each transform maps
 * database and queries, then every prefix m is searched with cosine similarity (core's
 * `retrievalMetrics`: 1-NN, recall@k, mAP@10, nDCG@10).
 */
export async function compareByDim(options: CompareOptions): Promise<MethodMetrics[]> {
  const out: MethodMetrics[] = [];
  for (const [method, transform] of Object.entries(options.transforms)) {
    const database = transform(options.database);
    const queries = transform(options.queries);
    const metrics = await retrievalMetrics({
      database,
      queries,
      databaseLabels: options.databaseLabels,
      queryLabels: options.queryLabels,
      dims: options.dims,
      ks: [1, 10],
      center: options.center ?? true,
    });
    out.push({ method, metrics });
  }
  return out;
}

/**
 * The three methods of the adaptor table: plain truncation, PCA fitted on `fitRows` (rotate then
 * truncate), and the adaptor when its weights are given.
 */
export function shorteningMethods(fitRows: Rows, adaptor?: AdaptorWeights): Record<string, EmbeddingTransform> {
  const pca = fitPca(fitRows, 'the PCA rows');
  const methods: Record<string, EmbeddingTransform> = {
    truncation: (rows) => rows,
    pca: (rows) => applyPca(pca, rows),
  };
  if (adaptor !== undefined) methods.adaptor = (rows) => applyAdaptor(adaptor, rows);
  return methods;
}

/** Labels that make row i of the queries relevant to row i of the documents only. */
export function pairLabels(rows: number): Int32Array {
  return Int32Array.from({ length: rows }, (_, i) => i);
}

/**
 * The per-dim table as text: 1-NN % per method for classification; recall@10 % and nDCG@10 %
 * per method for retrieval.
 */
export function formatComparison(results: readonly MethodMetrics[], task: ComparisonTask): string {
  const first = results[0];
  if (first === undefined) throw new MrlError('invalid-argument', 'formatComparison needs at least one method.');
  const rows = first.metrics.map((_, j) => j);
  const columns: Column<number>[] = [{ header: 'dim', value: (j) => String(first.metrics[j]!.dim) }];
  for (const { method, metrics } of results) {
    if (task === 'classification') {
      columns.push({ header: `${method} 1-NN %`, value: (j) => percent(metrics[j]!.nnTop1) });
    } else {
      columns.push({ header: `${method} R@10 %`, value: (j) => percent(metrics[j]!.recall[10]) });
      columns.push({ header: `${method} nDCG@10 %`, value: (j) => percent(metrics[j]!.ndcg10) });
    }
  }
  return formatTable(rows, columns);
}

/** The table as JSON-ready rows: `{ dim, <method>: { nnTop1, recall10, ndcg10, map10 } }`. */
export function comparisonRows(results: readonly MethodMetrics[]): Record<string, unknown>[] {
  const first = results[0];
  if (first === undefined) return [];
  return first.metrics.map((m, j) => {
    const row: Record<string, unknown> = { dim: m.dim };
    for (const { method, metrics } of results) {
      const r = metrics[j]!;
      row[method] = { nnTop1: r.nnTop1, recall10: r.recall[10], ndcg10: r.ndcg10, map10: r.map10 };
    }
    return row;
  });
}

/** Validation rows for {@link selectAdaptor}: queries searched against a database, with labels. */
export interface ValidationSet {
  database: Rows;
  queries: Rows;
  databaseLabels: Int32Array;
  queryLabels: Int32Array;
  /** Dims whose scores are averaged, e.g. the small ones an adaptor is for. */
  dims: readonly number[];
  /** 'nnTop1' (classification, default) or 'recall10' / 'ndcg10' (retrieval). */
  metric?: 'nnTop1' | 'recall10' | 'ndcg10';
  /** As in {@link CompareOptions.center} (default true). */
  center?: boolean;
}

/**
 * Model selection: scores each candidate's adapted validation queries against its adapted
 * validation database (the mean of `metric` over `dims`) and returns the best, with every score;
 * the first candidate wins ties. The validation rows must be held out of the adaptor's training.
 *
 * @example
 * ```ts
 * const { snapshots } = await fitAdaptor({ corpus, dims, snapshotEvery: 235 });
 * const best = await selectAdaptor(snapshots, { database, queries, databaseLabels, queryLabels, dims: [4, 8] });
 * ```
 */
export async function selectAdaptor<T extends { weights: AdaptorWeights }>(
  candidates: readonly T[],
  validation: ValidationSet,
): Promise<{ best: T; scores: number[] }> {
  if (candidates.length === 0) {
    throw new MrlError('invalid-argument', 'selectAdaptor got no candidates.', 'Pass at least one adaptor snapshot.');
  }
  const metric = validation.metric ?? 'nnTop1';
  const scores: number[] = [];
  for (const candidate of candidates) {
    const metrics = await retrievalMetrics({
      database: applyAdaptor(candidate.weights, validation.database, 'the validation database'),
      queries: applyAdaptor(candidate.weights, validation.queries, 'the validation queries'),
      databaseLabels: validation.databaseLabels,
      queryLabels: validation.queryLabels,
      dims: validation.dims,
      ks: [1, 10],
      center: validation.center ?? true,
    });
    const value = (r: RetrievalMetrics): number =>
      metric === 'nnTop1' ? r.nnTop1 : metric === 'recall10' ? (r.recall[10] ?? 0) : r.ndcg10;
    scores.push(metrics.reduce((sum, r) => sum + value(r), 0) / metrics.length);
  }
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return { best: candidates[best]!, scores };
}

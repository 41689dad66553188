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

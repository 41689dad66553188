import * as tf from '@tensorflow/tfjs';
import type { PrefixHead } from '../heads.js';
import { l2Normalize } from '../losses.js';
import type { EmbeddingMatrix } from './embeddings.js';

/**
 * Top-1 accuracy of the trained head's logits at each nesting dim. Results are read back
 * asynchronously, which GPU backends in Node require.
 */
export async function headTop1(
  head: PrefixHead,
  embeddings: EmbeddingMatrix,
  labels: Int32Array,
  dims: readonly number[],
  chunk = 2048,
): Promise<number[]> {
  const correct = dims.map(() => 0);
  for (let start = 0; start < embeddings.rows; start += chunk) {
    const rows = Math.min(chunk, embeddings.rows - start);
    const predictions = tf.tidy(() => {
      const z = tf.tensor2d(embeddings.data.subarray(start * embeddings.dim, (start + rows) * embeddings.dim), [
        rows,
        embeddings.dim,
      ]);
      return tf.stack(head.logits(z, dims).map((l) => tf.argMax(l, 1)));
    });
    const p = await predictions.data();
    predictions.dispose();
    dims.forEach((_, j) => {
      for (let i = 0; i < rows; i++) if (p[j * rows + i] === labels[start + i]) correct[j]! += 1;
    });
  }
  return correct.map((c) => c / embeddings.rows);
}

export interface RetrievalOptions {
  database: EmbeddingMatrix;
  databaseLabels: Int32Array;
  queries: EmbeddingMatrix;
  queryLabels: Int32Array;
  dims: readonly number[];
  /** Cut-offs for recall@k (default 1, 5, 10). */
  ks?: readonly number[];
  /** Query rows per similarity block. */
  chunk?: number;
  /**
   * Subtract the database's mean embedding from database and queries before normalising. A
   * shared offset crowds cosine similarity; PCA-projected (SVD) features are centred by
   * construction, so comparing other embeddings with them like for like means centring those too.
   * Default false: raw cosine, as an index serves them.
   */
  center?: boolean;
}

export interface RetrievalMetrics {
  dim: number;
  /** Label of the nearest database item (cosine on the normalised prefix) equals the query's. */
  nnTop1: number;
  /** Mean average precision of the top 10, relevance = same label, normalised by min(#relevant, 10). */
  map10: number;
  /** Fraction of queries with at least one same-label item in the top k. */
  recall: Record<number, number>;
  /**
   * nDCG@10 with binary gains (relevance = same label): DCG of the top 10 over the DCG of an ideal
   * ranking of min(#relevant, 10) relevant items.
   */
  ndcg10: number;
}

/**
 * Label-based retrieval quality of each prefix: every query is searched against the database
 * with cosine similarity on its first m dims (each prefix L2-normalised on its own, as MRL
 * deploys them).
 */
export async function retrievalMetrics(options: RetrievalOptions): Promise<RetrievalMetrics[]> {
  const ks = options.ks ?? [1, 5, 10];
  const depth = Math.min(options.database.rows, Math.max(10, ...ks));
  const chunk = options.chunk ?? 1024;
  const relevantCount = new Map<number, number>();
  for (const label of options.databaseLabels) relevantCount.set(label, (relevantCount.get(label) ?? 0) + 1);
  const [dbFull, queryFull] = tf.tidy(() => {
    const db = tf.tensor2d(options.database.data, [options.database.rows, options.database.dim]);
    const queries = tf.tensor2d(options.queries.data, [options.queries.rows, options.queries.dim]);
    if (options.center !== true) return [db, queries];
    const mean = tf.mean(db, 0, true); // [1, dim]; the prefix of the centred vector is the centred prefix
    return [tf.sub(db, mean), tf.sub(queries, mean)];
  });
  try {
    const results: RetrievalMetrics[] = [];
    for (const m of options.dims) {
      const db = tf.tidy(() => tf.transpose(l2Normalize(tf.slice(dbFull, [0, 0], [-1, m])))); // [m, Ndb]
      let hits1 = 0;
      let apSum = 0;
      let ndcgSum = 0;
      const recallHits = ks.map(() => 0);
      for (let start = 0; start < options.queries.rows; start += chunk) {
        const rows = Math.min(chunk, options.queries.rows - start);
        const top = tf.tidy(() => {
          const q = l2Normalize(tf.slice(queryFull, [start, 0], [rows, m]));
          return tf.topk(tf.matMul(q, db), depth).indices;
        });
        const idx = await top.data();
        top.dispose();
        for (let i = 0; i < rows; i++) {
          const label = options.queryLabels[start + i]!;
          const rel = (r: number): boolean => options.databaseLabels[idx[i * depth + r]!] === label;
          if (rel(0)) hits1 += 1;
          let found = 0;
          let precisionSum = 0;
          let dcg = 0;
          for (let r = 0; r < Math.min(10, depth); r++) {
            if (rel(r)) {
              found += 1;
              precisionSum += found / (r + 1);
              dcg += 1 / Math.log2(r + 2);
            }
          }
          const norm = Math.min(relevantCount.get(label) ?? 0, 10);
          apSum += norm > 0 ? precisionSum / norm : 0;
          let idealDcg = 0;
          for (let r = 0; r < norm; r++) idealDcg += 1 / Math.log2(r + 2);
          ndcgSum += idealDcg > 0 ? dcg / idealDcg : 0;
          ks.forEach((k, j) => {
            for (let r = 0; r < Math.min(k, depth); r++) {
              if (rel(r)) {
                recallHits[j]! += 1;
                break;
              }
            }
          });
        }
      }
      db.dispose();
      const n = options.queries.rows;
      const recall: Record<number, number> = {};
      ks.forEach((k, j) => {
        recall[k] = recallHits[j]! / n;
      });
      results.push({ dim: m, nnTop1: hits1 / n, map10: apSum / n, recall, ndcg10: ndcgSum / n });
    }
    return results;
  } finally {
    dbFull.dispose();
    queryFull.dispose();
  }
}

/**
 * The trivial reference of a classification table: the most frequent training label (the lowest
 * id among equally frequent ones) and the test accuracy of always answering it (0 for an empty
 * test split).
 */
export function majorityClass(
  trainLabels: ArrayLike<number>,
  testLabels: ArrayLike<number>,
): { label: number; accuracy: number } {
  const counts = new Map<number, number>();
  for (let i = 0; i < trainLabels.length; i++) counts.set(trainLabels[i]!, (counts.get(trainLabels[i]!) ?? 0) + 1);
  let label = -1;
  let best = 0;
  for (const [l, c] of counts) if (c > best || (c === best && l < label)) [label, best] = [l, c];
  let hits = 0;
  for (let i = 0; i < testLabels.length; i++) if (testLabels[i] === label) hits += 1;
  return { label, accuracy: testLabels.length === 0 ? 0 : hits / testLabels.length };
}

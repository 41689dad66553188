import { MrlError, truncateAndNormalize } from '@mrl/core';

/** Row-major embeddings [rows, dim]. */
export interface Embeddings {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** Recall@k of both directions at one nesting dim, fractions in [0, 1]. */
export interface RecallRow {
  dim: number;
  imageToText: Record<number, number>;
  textToImage: Record<number, number>;
  /**
   * mAP@10 of each direction: with one relevant item per query (the paired caption or image), the
   * mean over queries of 1 / rank when the pair is in the top 10, else 0 (ties against the query).
   */
  map10: { imageToText: number; textToImage: number };
}

/** The first m dims of every row, L2-normalised on their own (core's one prefix rule: a zero row stays zero). */
export function normalisedPrefix(x: Embeddings, m: number): Float32Array {
  if (!Number.isInteger(m) || m < 1 || m > x.dim)
    throw new MrlError('invalid-argument', `prefix ${m} is outside [1, ${x.dim}].`);
  return truncateAndNormalize(x.data, x.rows, x.dim, m);
}

function similarity(a: Float32Array, aRows: number, b: Float32Array, bRows: number, m: number): Float32Array {
  const out = new Float32Array(aRows * bRows);
  for (let i = 0; i < aRows; i++) {
    for (let j = 0; j < bRows; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += a[i * m + k]! * b[j * m + k]!;
      out[i * bRows + j] = s;
    }
  }
  return out;
}

/**
 * Paired retrieval on a test split: image i's caption is text i. For each nesting dim m, recall@k
 * of image->text (does image i find text i among the top k of all test texts) and text->image.
 * Ties count against the query (a caption identical to the right one ranks above it), so the
 * numbers are a lower bound. Chance recall@k is k / N.
 */
export function pairedRecall(
  images: Embeddings,
  texts: Embeddings,
  dims: readonly number[],
  ks: readonly number[] = [1, 5, 10],
): RecallRow[] {
  if (images.rows !== texts.rows)
    throw new MrlError(
      'invalid-argument',
      `${images.rows} image but ${texts.rows} text embeddings; they must pair up.`,
    );
  const n = images.rows;
  return dims.map((m) => {
    const sim = similarity(normalisedPrefix(images, m), n, normalisedPrefix(texts, m), n, m); // [N images, N texts]
    const i2tRanks = new Int32Array(n);
    const t2iRanks = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const positive = sim[i * n + i]!;
      let above = 0;
      for (let j = 0; j < n; j++) if (j !== i && sim[i * n + j]! >= positive) above++;
      i2tRanks[i] = above;
      above = 0;
      for (let j = 0; j < n; j++) if (j !== i && sim[j * n + i]! >= positive) above++;
      t2iRanks[i] = above;
    }
    const recall = (ranks: Int32Array): Record<number, number> =>
      Object.fromEntries(ks.map((k) => [k, ranks.reduce((s, r) => s + (r < k ? 1 : 0), 0) / Math.max(1, n)]));
    const map10 = (ranks: Int32Array) => ranks.reduce((s, r) => s + (r < 10 ? 1 / (r + 1) : 0), 0) / Math.max(1, n);
    return {
      dim: m,
      imageToText: recall(i2tRanks),
      textToImage: recall(t2iRanks),
      map10: { imageToText: map10(i2tRanks), textToImage: map10(t2iRanks) },
    };
  });
}

/**
 * Zero-shot classification: each image gets the class whose prompt embedding is nearest (cosine,
 * per nesting dim). Returns top-1 accuracy per dim.
 */
export function zeroShotAccuracy(
  images: Embeddings,
  labels: Int32Array,
  prompts: Embeddings,
  dims: readonly number[],
): number[] {
  if (labels.length !== images.rows)
    throw new MrlError('invalid-argument', `${labels.length} labels for ${images.rows} images.`);
  return dims.map((m) => {
    const sim = similarity(normalisedPrefix(images, m), images.rows, normalisedPrefix(prompts, m), prompts.rows, m);
    let correct = 0;
    for (let i = 0; i < images.rows; i++) {
      let best = 0;
      for (let c = 1; c < prompts.rows; c++) if (sim[i * prompts.rows + c]! > sim[i * prompts.rows + best]!) best = c;
      if (best === labels[i]) correct++;
    }
    return correct / Math.max(1, images.rows);
  });
}

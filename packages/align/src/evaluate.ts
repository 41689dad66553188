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

/** Rows of `a`, then rows of `b` (same width). */
function concatRows(a: Embeddings, b: Embeddings | undefined): Embeddings {
  if (b === undefined) return a;
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { data, rows: a.rows + b.rows, dim: a.dim };
}

/**
 * Pairs that widen the candidates of `pairedRecall` without being queries, e.g. the training split:
 * every test image is then ranked among the test captions and these captions, and every test
 * caption among the test images and these images.
 */
export interface RetrievalGallery {
  images: Embeddings;
  texts: Embeddings;
}

/**
 * Paired retrieval on a test split: image i's caption is text i. For each nesting dim m, recall@k
 * of image->text (does image i find text i among the top k of the candidate texts) and
 * text->image. The candidates are the test split's N texts (images), plus, with `gallery`, the
 * gallery's G texts (images): the whole collection when the gallery is the training split. Ties
 * count against the query (a caption identical to the right one ranks above it), so the numbers
 * are a lower bound. Chance recall@k is k / (N + G).
 *
 * @example
 * ```ts
 * // 728 held-out pairs as queries over all 7,434 drawings and titles (the 6,706 training pairs as gallery).
 * const rows = pairedRecall(testImages, testTexts, [8, 16, 32, 64], [1, 10], { images: trainImages, texts: trainTexts });
 * console.log(rows[0]!.imageToText[10], rows[0]!.map10.textToImage);
 * ```
 */
export function pairedRecall(
  images: Embeddings,
  texts: Embeddings,
  dims: readonly number[],
  ks: readonly number[] = [1, 5, 10],
  gallery?: RetrievalGallery,
): RecallRow[] {
  if (images.rows !== texts.rows)
    throw new MrlError(
      'invalid-argument',
      `${images.rows} image but ${texts.rows} text embeddings; they must pair up.`,
    );
  if (gallery !== undefined) {
    if (gallery.images.rows !== gallery.texts.rows)
      throw new MrlError(
        'invalid-argument',
        `the retrieval gallery has ${gallery.images.rows} image but ${gallery.texts.rows} text embeddings; they must pair up.`,
      );
    if (gallery.images.dim !== images.dim || gallery.texts.dim !== texts.dim)
      throw new MrlError(
        'invalid-argument',
        `the retrieval gallery's embeddings are ${gallery.images.dim} (images) and ${gallery.texts.dim} (texts) wide, the queries' ${images.dim} and ${texts.dim}; embed both with the same model.`,
      );
  }
  const n = images.rows;
  // Candidates: the test rows first (query i's pair is candidate i), then the gallery's.
  const candidateImages = concatRows(images, gallery?.images);
  const candidateTexts = concatRows(texts, gallery?.texts);
  const total = candidateImages.rows;
  return dims.map((m) => {
    const i2t = similarity(normalisedPrefix(images, m), n, normalisedPrefix(candidateTexts, m), total, m); // [N, N + G]
    const t2i = similarity(normalisedPrefix(texts, m), n, normalisedPrefix(candidateImages, m), total, m); // [N, N + G]
    const rankOf = (sim: Float32Array, i: number): number => {
      const row = i * total;
      const positive = sim[row + i]!;
      let above = 0;
      for (let j = 0; j < total; j++) if (j !== i && sim[row + j]! >= positive) above++;
      return above;
    };
    const i2tRanks = Int32Array.from({ length: n }, (_, i) => rankOf(i2t, i));
    const t2iRanks = Int32Array.from({ length: n }, (_, i) => rankOf(t2i, i));
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

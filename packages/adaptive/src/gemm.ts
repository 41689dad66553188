import { MrlError } from '@mrl/core/errors';
import { QUERY_BLOCK, QUERY_TILE, rowBlockSize, scoreTileF32 } from './scoring.js';
import { TopKHeap } from './topk.js';
import { assertIntInRange } from './validate.js';

/*
 * Exact scan as a matrix product. A batch of queries [nq, d] times a block of rows [R, d]
 * transposed gives the [nq, R] score tile in one GEMM call; top-k then reads the tile with one
 * comparison per score against each query's heap threshold. On a native GEMM (ONNX Runtime's
 * MLAS, AVX2/AVX-512 FMA) the product runs at tens of GFLOP/s on one thread, against ~1.5 for
 * the register-blocked JS loop in scoring.ts; the top-k pass is memory-bound and cheap.
 *
 * A prefix m < d of rows that are stored with stride d is scored by zeroing the queries past
 * m: q[:m]·x[:m] = (q[:m], 0)·x exactly (the index holds finite values only), so the rows are
 * never copied. The product then costs d, not m, multiply-adds per row, which on a native GEMM
 * is still far faster than the JS loop at m.
 */

/**
 * A matrix product engine: `y[aRows, bRows] = a[aRows, dim] @ b[bRows, dim]^T`, all row-major
 * and contiguous. Implementations: {@link jsGemm} (here, runs anywhere) and `nativeGemm()` from
 * `@mrl/adaptive/node` (ONNX Runtime's MLAS).
 */
export interface Gemm {
  /** What runs the product, for reports. */
  readonly name: string;
  multiplyTransposed(
    a: Float32Array,
    aRows: number,
    b: Float32Array,
    bRows: number,
    dim: number,
    y: Float32Array,
  ): void;
  /**
   * Optional fused product and selection: for each of the `aRows` queries, the `k` (<= `bRows`)
   * highest of `(a[i] · b[j]) * scale[j]` (`scale` absent: 1) as values and column indices,
   * `[aRows, k]` each; ties go to the lower column. When present, {@link gemmTopK} never
   * materialises the score tile in JavaScript, so a full scan costs about one GEMM.
   */
  multiplyTopK?(
    a: Float32Array,
    aRows: number,
    b: Float32Array,
    bRows: number,
    dim: number,
    k: number,
    scale: Float32Array | undefined,
    values: Float32Array,
    indices: BigInt64Array,
  ): void;
  /**
   * Optional: {@link Gemm.multiplyTopK} with int8 rows, `(a[i] · codes[j]) * scale[j]`, the codes
   * widened to float inside the engine (an int8 first stage scanned without a float copy).
   */
  multiplyInt8TopK?(
    a: Float32Array,
    aRows: number,
    codes: Int8Array,
    bRows: number,
    dim: number,
    k: number,
    scale: Float32Array | undefined,
    values: Float32Array,
    indices: BigInt64Array,
  ): void;
  /**
   * Optional: {@link Gemm.multiplyTransposed} with int8 rows, `y = a @ codes^T` (the codes
   * widened inside the engine). Used instead of {@link Gemm.multiplyInt8TopK} when the shortlist
   * is long, where a native top-k of hundreds per block costs more than the product.
   */
  multiplyInt8Transposed?(
    a: Float32Array,
    aRows: number,
    codes: Int8Array,
    bRows: number,
    dim: number,
    y: Float32Array,
  ): void;
  /**
   * Optional: for each of the `aRows` queries, the `k` rows of `rowBits` (sign bits, the layout
   * of `BinaryPrefix.bits`, `words` Uint32 per row) nearest in Hamming distance, as values
   * `-distance` and column indices, best first, ties to the lower column. `querySigns` is
   * `[aRows, 32 * words]`: +1 where the query's bit is set, -1 where not, 0 past the prefix.
   */
  hammingTopK?(
    querySigns: Float32Array,
    aRows: number,
    rowBits: Uint32Array,
    bRows: number,
    words: number,
    k: number,
    values: Float32Array,
    indices: BigInt64Array,
  ): void;
}

/**
 * The blocked JavaScript product (register tile of 4 queries, cache blocks of rows), float64
 * accumulation. Runs in any JS engine.
 *
 * @example
 * ```ts
 * const y = new Float32Array(2);
 * jsGemm.multiplyTransposed(Float32Array.of(1, 2), 1, Float32Array.of(3, 4, 5, 6), 2, 2, y); // [11, 17]
 * ```
 */
export const jsGemm: Gemm = {
  name: 'JavaScript (blocked)',
  multiplyTransposed(a, aRows, b, bRows, dim, y) {
    const rb = rowBlockSize(dim);
    const tile = new Float64Array(QUERY_TILE * rb);
    for (let qb = 0; qb < aRows; qb += QUERY_BLOCK) {
      const qbEnd = Math.min(aRows, qb + QUERY_BLOCK);
      for (let r0 = 0; r0 < bRows; r0 += rb) {
        const r1 = Math.min(bRows, r0 + rb);
        for (let t = qb; t < qbEnd; t += QUERY_TILE) {
          const nt = Math.min(QUERY_TILE, qbEnd - t);
          const last = t + nt - 1;
          const q = (i: number): number => Math.min(i, last) * dim;
          scoreTileF32(a, q(t), q(t + 1), q(t + 2), q(t + 3), b, dim, r0, r1, dim, tile);
          for (let r = r0; r < r1; r++) {
            const o = 4 * (r - r0);
            for (let u = 0; u < nt; u++) y[(t + u) * bRows + r] = tile[o + u] as number;
          }
        }
      }
    }
  },
};

/** Rows per GEMM call: a [queries, rows] tile of about 4 MiB stays in cache for the top-k pass. */
export function rowChunk(nq: number): number {
  return Math.max(256, Math.min(16384, Math.floor((1 << 20) / Math.max(1, nq))));
}

/** Queries per GEMM call; more share each pass over the rows but need a bigger tile. */
export const QUERY_BATCH = 256;

/** Rows per fused product + top-k call: the tile stays native, so larger blocks only cut call overhead. */
const FUSED_ROW_CHUNK = 8192;

/**
 * For each query, the `k` rows with the highest `dot(query[:dim], row[:dim]) * rowScale[row]`,
 * scored by `gemm` over blocks of rows. `queries` and `rows` are row-major with `stride`
 * values per row (the index's full dim); only the first `dim` count.
 *
 * @example
 * ```ts
 * const heaps = gemmTopK(jsGemm, queries, nq, vectors, n, 256, 64, 10, invNorms64);
 * ```
 */
export function gemmTopK(
  gemm: Gemm,
  queries: Float32Array,
  nq: number,
  rows: Float32Array,
  nr: number,
  stride: number,
  dim: number,
  k: number,
  rowScale?: Float32Array,
): TopKHeap[] {
  assertIntInRange('dim', dim, 1, stride);
  assertIntInRange('k', k, 1);
  if (queries.length < nq * stride || rows.length < nr * stride) {
    throw new MrlError(
      'invalid-argument',
      `gemmTopK needs ${nq} x ${stride} query values and ${nr} x ${stride} row values, got ${queries.length} and ${rows.length}`,
    );
  }
  if (rowScale !== undefined && rowScale.length < nr) {
    throw new MrlError('invalid-argument', `rowScale has ${rowScale.length} values for ${nr} rows`);
  }
  const keep = Math.max(1, Math.min(k, nr));
  const heaps = Array.from({ length: nq }, () => new TopKHeap(keep));
  for (let q0 = 0; q0 < nq; q0 += QUERY_BATCH) {
    const q1 = Math.min(nq, q0 + QUERY_BATCH);
    const bq = q1 - q0;
    let a = queries.subarray(q0 * stride, q1 * stride);
    if (dim < stride) {
      a = new Float32Array(a);
      for (let q = 0; q < bq; q++) a.fill(0, q * stride + dim, (q + 1) * stride);
    }
    if (gemm.multiplyTopK !== undefined) {
      fusedTopK(gemm, a, bq, rows, nr, stride, keep, rowScale, heaps, q0);
      continue;
    }
    const chunk = rowChunk(bq);
    const tile = new Float32Array(bq * chunk);
    for (let r0 = 0; r0 < nr; r0 += chunk) {
      const r1 = Math.min(nr, r0 + chunk);
      const nb = r1 - r0;
      const y = tile.subarray(0, bq * nb);
      gemm.multiplyTransposed(a, bq, rows.subarray(r0 * stride, r1 * stride), nb, stride, y);
      for (let q = 0; q < bq; q++) {
        const heap = heaps[q0 + q] as TopKHeap;
        let thr = heap.threshold;
        const o = q * nb;
        if (rowScale === undefined) {
          for (let r = 0; r < nb; r++) {
            const v = y[o + r] as number;
            if (v >= thr) {
              heap.push(v, r0 + r);
              thr = heap.threshold;
            }
          }
        } else {
          for (let r = 0; r < nb; r++) {
            const v = (y[o + r] as number) * (rowScale[r0 + r] as number);
            if (v >= thr) {
              heap.push(v, r0 + r);
              thr = heap.threshold;
            }
          }
        }
      }
    }
  }
  return heaps;
}

/** The {@link gemmTopK} pass over all rows for one query batch when the engine selects natively. */
function fusedTopK(
  gemm: Gemm,
  a: Float32Array,
  bq: number,
  rows: Float32Array,
  nr: number,
  stride: number,
  keep: number,
  rowScale: Float32Array | undefined,
  heaps: TopKHeap[],
  q0: number,
): void {
  const multiply = gemm.multiplyTopK as NonNullable<Gemm['multiplyTopK']>;
  fusedBlocks(bq, nr, keep, heaps, q0, (r0, r1, kk, values, indices) =>
    multiply(
      a,
      bq,
      rows.subarray(r0 * stride, r1 * stride),
      r1 - r0,
      stride,
      kk,
      rowScale?.subarray(r0, r1),
      values,
      indices,
    ),
  );
}

/**
 * Runs a native product + top-k over all `nr` rows in blocks of {@link FUSED_ROW_CHUNK} for one
 * batch of `bq` queries (heaps `q0 ..`), and merges each block's best-first values and indices
 * into the heaps. `select(r0, r1, kk, values, indices)` fills `[bq, kk]` values and block-local
 * indices for rows `r0 .. r1`.
 */
export function fusedBlocks(
  bq: number,
  nr: number,
  keep: number,
  heaps: readonly TopKHeap[],
  q0: number,
  select: (r0: number, r1: number, kk: number, values: Float32Array, indices: BigInt64Array) => void,
): void {
  const values = new Float32Array(bq * keep);
  const indices = new BigInt64Array(bq * keep);
  for (let r0 = 0; r0 < nr; r0 += FUSED_ROW_CHUNK) {
    const r1 = Math.min(nr, r0 + FUSED_ROW_CHUNK);
    const kk = Math.min(keep, r1 - r0);
    select(r0, r1, kk, values, indices);
    for (let q = 0; q < bq; q++) {
      const heap = heaps[q0 + q] as TopKHeap;
      for (let c = 0; c < kk; c++) {
        const v = values[q * kk + c] as number;
        // Each query's values arrive best first: once one misses the heap, the rest do too.
        if (v < heap.threshold) break;
        heap.push(v, r0 + Number(indices[q * kk + c] as bigint));
      }
    }
  }
}

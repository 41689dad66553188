import { MrlError } from '@mrl/core/errors';
import { TopKHeap } from './topk.js';
import { assertIntInRange } from './validate.js';

/*
 * Blocked dot products in plain JavaScript.
 *
 * Two levels of blocking keep the data in cache:
 *  - a block of rows whose prefixes take about 64 KiB is scored against a block of queries
 *    (QUERY_BLOCK), so each row prefix is read from memory once per query block, not once per
 *    query;
 *  - inside, a tile of 4 queries is scored against one row at a time, so each row value is
 *    loaded once and feeds 4 multiply-adds held in 4 registers (JS has no SIMD; this is the
 *    register blocking that matters).
 * Sums are accumulated in float64 (JS numbers).
 */

/** Queries scored together against one row (register tile). */
export const QUERY_TILE = 4;
/** Queries scored against one row block before moving to the next block. */
export const QUERY_BLOCK = 32;

/**
 * Rows per block so that one block's prefixes of length `dim` take about 64 KiB.
 *
 * @example
 * ```ts
 * rowBlockSize(256); // 64 rows of 256 floats
 * ```
 */
export function rowBlockSize(dim: number): number {
  // A prefix shorter than a cache line still costs a whole line (16 floats).
  return Math.max(16, Math.floor(16384 / Math.max(16, dim)));
}

/**
 * Scores queries at offsets q0..q3 against rows [r0, r1) over the first `dim` values; writes
 * out[4 * (r - r0) + t] for tile slot t. Callers repeat an offset for a short tile.
 */
export function scoreTileF32(
  q: Float32Array,
  q0: number,
  q1: number,
  q2: number,
  q3: number,
  rows: Float32Array,
  rowStride: number,
  r0: number,
  r1: number,
  dim: number,
  out: Float64Array,
): void {
  let o = 0;
  for (let r = r0; r < r1; r++) {
    const base = r * rowStride;
    let s0 = 0,
      s1 = 0,
      s2 = 0,
      s3 = 0;
    for (let j = 0; j < dim; j++) {
      const x = rows[base + j] as number;
      s0 += (q[q0 + j] as number) * x;
      s1 += (q[q1 + j] as number) * x;
      s2 += (q[q2 + j] as number) * x;
      s3 += (q[q3 + j] as number) * x;
    }
    out[o] = s0;
    out[o + 1] = s1;
    out[o + 2] = s2;
    out[o + 3] = s3;
    o += 4;
  }
}

/** A row-major matrix: `data[i * stride + j]` is value j of row i; only the first `dim` are used. */
export interface MatrixView<T extends Float32Array | Int8Array = Float32Array> {
  readonly data: T;
  readonly rows: number;
  readonly stride: number;
}

function checkView(name: string, v: MatrixView<Float32Array | Int8Array>, dim: number): void {
  assertIntInRange(`${name}.rows`, v.rows, 0);
  assertIntInRange(`${name}.stride`, v.stride, 1);
  if (dim > v.stride) {
    throw new MrlError('invalid-argument', `dim ${dim} exceeds ${name}.stride ${v.stride}`);
  }
  const needed = v.rows === 0 ? 0 : (v.rows - 1) * v.stride + dim;
  if (v.data.length < needed) {
    throw new MrlError(
      'invalid-argument',
      `${name} has ${v.data.length} values but ${v.rows} rows of stride ${v.stride} at dim ${dim} need ${needed}`,
    );
  }
}

/**
 * All dot products between the first `dim` values of each query and each row, blocked for
 * cache. Returns a row-major [queries.rows, rows.rows] Float32Array.
 *
 * @example
 * ```ts
 * const q = { data: new Float32Array([1, 0, 0, 1]), rows: 2, stride: 2 };
 * const x = { data: new Float32Array([3, 4]), rows: 1, stride: 2 };
 * dotProducts(q, x, 2); // [3, 4]
 * ```
 */
export function dotProducts(
  queries: MatrixView,
  rows: MatrixView,
  dim: number,
  out: Float32Array = new Float32Array(queries.rows * rows.rows),
): Float32Array {
  assertIntInRange('dim', dim, 1);
  checkView('queries', queries, dim);
  checkView('rows', rows, dim);
  if (out.length < queries.rows * rows.rows) {
    throw new MrlError('invalid-argument', `out has ${out.length} values, needs ${queries.rows * rows.rows}`);
  }
  const nq = queries.rows;
  const nr = rows.rows;
  const rb = rowBlockSize(dim);
  const tile = new Float64Array(QUERY_TILE * rb);
  for (let qb = 0; qb < nq; qb += QUERY_BLOCK) {
    const qbEnd = Math.min(nq, qb + QUERY_BLOCK);
    for (let r0 = 0; r0 < nr; r0 += rb) {
      const r1 = Math.min(nr, r0 + rb);
      for (let t = qb; t < qbEnd; t += QUERY_TILE) {
        const nt = Math.min(QUERY_TILE, qbEnd - t);
        const s = queries.stride;
        const last = t + nt - 1;
        scoreTileF32(
          queries.data,
          t * s,
          Math.min(t + 1, last) * s,
          Math.min(t + 2, last) * s,
          Math.min(t + 3, last) * s,
          rows.data,
          rows.stride,
          r0,
          r1,
          dim,
          tile,
        );
        for (let r = r0; r < r1; r++) {
          const o = 4 * (r - r0);
          for (let u = 0; u < nt; u++) out[(t + u) * nr + r] = tile[o + u] as number;
        }
      }
    }
  }
  return out;
}

/**
 * For each query, the `k` rows with the highest `dot(query[:dim], row[:dim]) * rowScale[row]`
 * (rowScale omitted: 1), scanned in cache blocks straight into one bounded heap per query;
 * the [queries, rows] score matrix is never materialised.
 *
 * @example
 * ```ts
 * const heaps = blockedTopK(queries, rows, 64, 10, invNorms64);
 * ```
 */
export function blockedTopK(
  queries: MatrixView,
  rows: MatrixView,
  dim: number,
  k: number,
  rowScale?: Float32Array,
): TopKHeap[] {
  assertIntInRange('dim', dim, 1);
  assertIntInRange('k', k, 1);
  checkView('queries', queries, dim);
  checkView('rows', rows, dim);
  const nq = queries.rows;
  const nr = rows.rows;
  if (rowScale !== undefined && rowScale.length < nr) {
    throw new MrlError('invalid-argument', `rowScale has ${rowScale.length} values for ${nr} rows`);
  }
  const keep = Math.max(1, Math.min(k, nr));
  const heaps = Array.from({ length: nq }, () => new TopKHeap(keep));
  const rb = rowBlockSize(dim);
  const tile = new Float64Array(QUERY_TILE * rb);
  const s = queries.stride;
  for (let qb = 0; qb < nq; qb += QUERY_BLOCK) {
    const qbEnd = Math.min(nq, qb + QUERY_BLOCK);
    for (let r0 = 0; r0 < nr; r0 += rb) {
      const r1 = Math.min(nr, r0 + rb);
      for (let t = qb; t < qbEnd; t += QUERY_TILE) {
        const nt = Math.min(QUERY_TILE, qbEnd - t);
        const last = t + nt - 1;
        scoreTileF32(
          queries.data,
          t * s,
          Math.min(t + 1, last) * s,
          Math.min(t + 2, last) * s,
          Math.min(t + 3, last) * s,
          rows.data,
          rows.stride,
          r0,
          r1,
          dim,
          tile,
        );
        for (let u = 0; u < nt; u++) {
          const heap = heaps[t + u] as TopKHeap;
          let thr = heap.threshold;
          for (let r = r0; r < r1; r++) {
            let v = tile[4 * (r - r0) + u] as number;
            if (rowScale !== undefined) v *= rowScale[r] as number;
            if (v >= thr) {
              heap.push(v, r);
              thr = heap.threshold;
            }
          }
        }
      }
    }
  }
  return heaps;
}

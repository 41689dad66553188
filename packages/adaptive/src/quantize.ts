import { MrlError } from '@mrl/core/errors';
import { fusedBlocks, type Gemm, QUERY_BATCH, rowChunk } from './gemm.js';
import { QUERY_BLOCK, QUERY_TILE, rowBlockSize, type MatrixView } from './scoring.js';
import { TopKHeap } from './topk.js';
import { assertIntInRange } from './validate.js';

/*
 * Quantised copies of one prefix, for a cheap first stage that float re-ranking then corrects.
 *
 * - int8: asymmetric (float query against int8 codes, symmetric rounding to [-127, 127]).
 *   'per-vector' keeps one scale per row (max |x| over the prefix / 127): robust when row norms
 *   vary. 'per-dim' keeps one scale per coordinate (max |x_j| over rows / 127): suits
 *   Matryoshka embeddings, whose early coordinates have much larger variance than late ones;
 *   the query is pre-multiplied by the scales, so a row costs exactly `dim` multiply-adds.
 * - binary: one sign bit per coordinate (x > 0), 32 per Uint32 word; score = -Hamming distance,
 *   computed with XOR and a SWAR popcount. Sign bits assume roughly zero-centred coordinates.
 *
 * Op counts (reported as FLOPs so the stages add up): an int8 multiply-add is 2, a per-vector
 * scale 1 per row, a binary word is 2 (XOR + popcount, one instruction each on hardware that
 * has POPCNT; the JS SWAR popcount takes ~12 integer ops, which the timings show).
 */

/** How int8 codes are scaled: one scale per row, or one per coordinate. */
export type Int8ScaleMode = 'per-vector' | 'per-dim';

/** int8 codes of the first `dim` values of `size` rows. */
export interface Int8Prefix {
  readonly kind: 'int8';
  readonly dim: number;
  readonly size: number;
  readonly scaleMode: Int8ScaleMode;
  /** [size, dim] codes in [-127, 127]. */
  readonly codes: Int8Array;
  /** [size] for 'per-vector', [dim] for 'per-dim'; value ~= code * scale. */
  readonly scales: Float32Array;
}

/** Sign bits of the first `dim` values of `size` rows. */
export interface BinaryPrefix {
  readonly kind: 'binary';
  readonly dim: number;
  readonly size: number;
  /** ceil(dim / 32). */
  readonly wordsPerVector: number;
  /** [size, wordsPerVector]; bit j % 32 of word j / 32 is set when value j > 0. */
  readonly bits: Uint32Array;
}

/** A quantised prefix usable as a first stage. */
export type QuantizedPrefix = Int8Prefix | BinaryPrefix;

function checkSource(rows: MatrixView, dim: number): void {
  assertIntInRange('dim', dim, 1, rows.stride);
  assertIntInRange('rows', rows.rows, 1);
  if (rows.data.length < (rows.rows - 1) * rows.stride + dim) {
    throw new MrlError(
      'invalid-argument',
      `source has ${rows.data.length} values, too few for ${rows.rows} rows of stride ${rows.stride}`,
    );
  }
}

/**
 * int8-quantises the first `dim` values of every row.
 *
 * @example
 * ```ts
 * const q8 = quantizeInt8({ data: vectors, rows: n, stride: d }, 64, 'per-dim');
 * ```
 */
export function quantizeInt8(rows: MatrixView, dim: number, scaleMode: Int8ScaleMode = 'per-vector'): Int8Prefix {
  checkSource(rows, dim);
  if (scaleMode !== 'per-vector' && scaleMode !== 'per-dim') {
    throw new MrlError(
      'invalid-argument',
      `int8 scale mode must be 'per-vector' or 'per-dim', got '${String(scaleMode)}'`,
    );
  }
  const n = rows.rows;
  const x = rows.data;
  const codes = new Int8Array(n * dim);
  const scales = new Float32Array(scaleMode === 'per-vector' ? n : dim);
  if (scaleMode === 'per-vector') {
    for (let i = 0; i < n; i++) {
      const base = i * rows.stride;
      let m = 0;
      for (let j = 0; j < dim; j++) m = Math.max(m, Math.abs(x[base + j] as number));
      const scale = m / 127;
      scales[i] = scale;
      const inv = scale > 0 ? 1 / scale : 0;
      for (let j = 0; j < dim; j++) codes[i * dim + j] = clampCode(Math.round((x[base + j] as number) * inv));
    }
  } else {
    const maxAbs = new Float64Array(dim);
    for (let i = 0; i < n; i++) {
      const base = i * rows.stride;
      for (let j = 0; j < dim; j++) maxAbs[j] = Math.max(maxAbs[j] as number, Math.abs(x[base + j] as number));
    }
    const inv = new Float64Array(dim);
    for (let j = 0; j < dim; j++) {
      const scale = (maxAbs[j] as number) / 127;
      scales[j] = scale;
      inv[j] = scale > 0 ? 1 / scale : 0;
    }
    for (let i = 0; i < n; i++) {
      const base = i * rows.stride;
      for (let j = 0; j < dim; j++)
        codes[i * dim + j] = clampCode(Math.round((x[base + j] as number) * (inv[j] as number)));
    }
  }
  return { kind: 'int8', dim, size: n, scaleMode, codes, scales };
}

function clampCode(v: number): number {
  return v > 127 ? 127 : v < -127 ? -127 : v;
}

/**
 * Packs the sign bits of the first `dim` values of every row.
 *
 * @example
 * ```ts
 * const bits = quantizeBinary({ data: vectors, rows: n, stride: d }, d);
 * ```
 */
export function quantizeBinary(rows: MatrixView, dim: number): BinaryPrefix {
  checkSource(rows, dim);
  const n = rows.rows;
  const words = Math.ceil(dim / 32);
  const bits = new Uint32Array(n * words);
  packSigns(rows.data, rows.stride, n, dim, bits);
  return { kind: 'binary', dim, size: n, wordsPerVector: words, bits };
}

function packSigns(x: Float32Array | Int8Array, stride: number, n: number, dim: number, out: Uint32Array): void {
  const words = Math.ceil(dim / 32);
  for (let i = 0; i < n; i++) {
    const base = i * stride;
    for (let w = 0; w < words; w++) {
      let word = 0;
      const j0 = w * 32;
      const j1 = Math.min(dim, j0 + 32);
      for (let j = j0; j < j1; j++) if ((x[base + j] as number) > 0) word |= 1 << (j - j0);
      out[i * words + w] = word >>> 0;
    }
  }
}

/**
 * Number of set bits in a 32-bit integer (SWAR, no lookup table).
 *
 * @example
 * ```ts
 * popcount32(0xff00ff00); // 16
 * ```
 */
export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Ops a quantised first stage spends per scored row (see the op-count note above).
 *
 * @example
 * ```ts
 * quantizedOpsPerRow(quantizeBinary(view, 256)); // 16: 8 words x (XOR + popcount)
 * ```
 */
export function quantizedOpsPerRow(prefix: QuantizedPrefix): number {
  if (prefix.kind === 'binary') return 2 * prefix.wordsPerVector;
  return 2 * prefix.dim + (prefix.scaleMode === 'per-vector' ? 1 : 0);
}

/**
 * Ops a quantised first stage spends per query before scanning (query scaling or packing).
 *
 * @example
 * ```ts
 * quantizedOpsPerQuery(quantizeInt8(view, 64, 'per-dim')); // 64 multiplies
 * ```
 */
export function quantizedOpsPerQuery(prefix: QuantizedPrefix): number {
  return prefix.kind === 'int8' && prefix.scaleMode === 'per-vector' ? 0 : prefix.dim;
}

/**
 * For each query, the `k` rows with the best quantised score: int8 ~ dot product (times
 * `rowScale[row]` when given, e.g. inverse prefix norms for cosine), binary = -Hamming distance.
 *
 * @example
 * ```ts
 * const heaps = quantizedTopK(q8, { data: queries, rows: nq, stride: d }, 200);
 * ```
 */
export function quantizedTopK(
  prefix: QuantizedPrefix,
  queries: MatrixView,
  k: number,
  rowScale?: Float32Array,
  gemm?: Gemm,
): TopKHeap[] {
  assertIntInRange('k', k, 1);
  assertIntInRange('queries.rows', queries.rows, 1);
  if (queries.stride < prefix.dim) {
    throw new MrlError(
      'invalid-argument',
      `queries have ${queries.stride} values per row, the quantised prefix needs ${prefix.dim}`,
    );
  }
  if (prefix.kind === 'int8') {
    return gemm?.multiplyInt8TopK !== undefined
      ? nativeInt8TopK(gemm, prefix, queries, k, rowScale)
      : int8TopK(prefix, queries, k, rowScale);
  }
  return gemm?.hammingTopK !== undefined ? nativeBinaryTopK(gemm, prefix, queries, k) : binaryTopK(prefix, queries, k);
}

/** Compact float queries [nq, dim], pre-multiplied by the per-dim scales where those apply. */
function int8Queries(p: Int8Prefix, queries: MatrixView): Float32Array {
  const nq = queries.rows;
  const dim = p.dim;
  const q = new Float32Array(nq * dim);
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < dim; j++) {
      const v = queries.data[i * queries.stride + j] as number;
      q[i * dim + j] = p.scaleMode === 'per-dim' ? v * (p.scales[j] as number) : v;
    }
  }
  return q;
}

/**
 * The int8 scan on a native engine: per batch of queries and block of rows, one call widens the
 * codes, multiplies and selects (the row factor is the per-vector scale times `rowScale`, in
 * float32; the JS scan multiplies in float64, so scores differ at the last bit).
 */
function nativeInt8TopK(
  gemm: Gemm,
  p: Int8Prefix,
  queries: MatrixView,
  k: number,
  rowScale: Float32Array | undefined,
): TopKHeap[] {
  const nq = queries.rows;
  const dim = p.dim;
  const q = int8Queries(p, queries);
  const perVector = p.scaleMode === 'per-vector' ? p.scales : undefined;
  let factor: Float32Array | undefined;
  if (perVector !== undefined && rowScale !== undefined) {
    factor = new Float32Array(p.size);
    for (let r = 0; r < p.size; r++) factor[r] = (perVector[r] as number) * (rowScale[r] as number);
  } else {
    factor = perVector ?? rowScale;
  }
  const keep = Math.min(k, p.size);
  const heaps = Array.from({ length: nq }, () => new TopKHeap(keep));
  if (keep > NATIVE_TOPK_MAX && gemm.multiplyInt8Transposed !== undefined) {
    int8ProductTopK(gemm.multiplyInt8Transposed.bind(gemm), p, q, nq, factor, heaps);
    return heaps;
  }
  const multiply = gemm.multiplyInt8TopK as NonNullable<Gemm['multiplyInt8TopK']>;
  for (let q0 = 0; q0 < nq; q0 += QUERY_BATCH) {
    const bq = Math.min(nq, q0 + QUERY_BATCH) - q0;
    const a = q.subarray(q0 * dim, (q0 + bq) * dim);
    fusedBlocks(bq, p.size, keep, heaps, q0, (r0, r1, kk, values, indices) =>
      multiply(
        a,
        bq,
        p.codes.subarray(r0 * dim, r1 * dim),
        r1 - r0,
        dim,
        kk,
        factor?.subarray(r0, r1),
        values,
        indices,
      ),
    );
  }
  return heaps;
}

/**
 * Longest shortlist selected by the engine's fused top-k; above it the score tile comes back
 * and is selected here (a native TopK of 100 per 8,192-row block cost ~15x one of 10).
 */
const NATIVE_TOPK_MAX = 32;

/** The int8 scan as native products of blocks, selected in JavaScript against each heap's threshold. */
function int8ProductTopK(
  multiply: NonNullable<Gemm['multiplyInt8Transposed']>,
  p: Int8Prefix,
  q: Float32Array,
  nq: number,
  factor: Float32Array | undefined,
  heaps: readonly TopKHeap[],
): void {
  const dim = p.dim;
  for (let q0 = 0; q0 < nq; q0 += QUERY_BATCH) {
    const bq = Math.min(nq, q0 + QUERY_BATCH) - q0;
    const a = q.subarray(q0 * dim, (q0 + bq) * dim);
    const chunk = rowChunk(bq);
    const tile = new Float32Array(bq * chunk);
    for (let r0 = 0; r0 < p.size; r0 += chunk) {
      const r1 = Math.min(p.size, r0 + chunk);
      const nb = r1 - r0;
      const y = tile.subarray(0, bq * nb);
      multiply(a, bq, p.codes.subarray(r0 * dim, r1 * dim), nb, dim, y);
      for (let i = 0; i < bq; i++) {
        const heap = heaps[q0 + i] as TopKHeap;
        let thr = heap.threshold;
        const o = i * nb;
        for (let r = 0; r < nb; r++) {
          const v = factor === undefined ? (y[o + r] as number) : (y[o + r] as number) * (factor[r0 + r] as number);
          if (v >= thr) {
            heap.push(v, r0 + r);
            thr = heap.threshold;
          }
        }
      }
    }
  }
}

/** The binary scan on a native engine (unpacked sign bits times +-1 queries, then top-k). */
function nativeBinaryTopK(gemm: Gemm, p: BinaryPrefix, queries: MatrixView, k: number): TopKHeap[] {
  const nq = queries.rows;
  const w = p.wordsPerVector;
  const width = 32 * w;
  const signs = new Float32Array(nq * width);
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < p.dim; j++)
      signs[i * width + j] = (queries.data[i * queries.stride + j] as number) > 0 ? 1 : -1;
  }
  const keep = Math.min(k, p.size);
  const heaps = Array.from({ length: nq }, () => new TopKHeap(keep));
  const hamming = gemm.hammingTopK as NonNullable<Gemm['hammingTopK']>;
  for (let q0 = 0; q0 < nq; q0 += QUERY_BATCH) {
    const bq = Math.min(nq, q0 + QUERY_BATCH) - q0;
    const a = signs.subarray(q0 * width, (q0 + bq) * width);
    fusedBlocks(bq, p.size, keep, heaps, q0, (r0, r1, kk, values, indices) =>
      hamming(a, bq, p.bits.subarray(r0 * w, r1 * w), r1 - r0, w, kk, values, indices),
    );
  }
  return heaps;
}

function int8TopK(p: Int8Prefix, queries: MatrixView, k: number, rowScale: Float32Array | undefined): TopKHeap[] {
  const nq = queries.rows;
  const dim = p.dim;
  const n = p.size;
  const q = int8Queries(p, queries);
  const perVector = p.scaleMode === 'per-vector' ? p.scales : undefined;
  const keep = Math.min(k, n);
  const heaps = Array.from({ length: nq }, () => new TopKHeap(keep));
  const rb = rowBlockSize(dim);
  const tile = new Float64Array(QUERY_TILE * rb);
  const codes = p.codes;
  for (let qb = 0; qb < nq; qb += QUERY_BLOCK) {
    const qbEnd = Math.min(nq, qb + QUERY_BLOCK);
    for (let r0 = 0; r0 < n; r0 += rb) {
      const r1 = Math.min(n, r0 + rb);
      for (let t = qb; t < qbEnd; t += QUERY_TILE) {
        const nt = Math.min(QUERY_TILE, qbEnd - t);
        const last = t + nt - 1;
        const q0 = t * dim,
          q1 = Math.min(t + 1, last) * dim,
          q2 = Math.min(t + 2, last) * dim,
          q3 = Math.min(t + 3, last) * dim;
        let o = 0;
        for (let r = r0; r < r1; r++) {
          const base = r * dim;
          let s0 = 0,
            s1 = 0,
            s2 = 0,
            s3 = 0;
          for (let j = 0; j < dim; j++) {
            const c = codes[base + j] as number;
            s0 += (q[q0 + j] as number) * c;
            s1 += (q[q1 + j] as number) * c;
            s2 += (q[q2 + j] as number) * c;
            s3 += (q[q3 + j] as number) * c;
          }
          tile[o] = s0;
          tile[o + 1] = s1;
          tile[o + 2] = s2;
          tile[o + 3] = s3;
          o += 4;
        }
        for (let u = 0; u < nt; u++) {
          const heap = heaps[t + u] as TopKHeap;
          let thr = heap.threshold;
          for (let r = r0; r < r1; r++) {
            let v = tile[4 * (r - r0) + u] as number;
            if (perVector !== undefined) v *= perVector[r] as number;
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

function binaryTopK(p: BinaryPrefix, queries: MatrixView, k: number): TopKHeap[] {
  const nq = queries.rows;
  const w = p.wordsPerVector;
  const qbits = new Uint32Array(nq * w);
  packSigns(queries.data, queries.stride, nq, p.dim, qbits);
  const keep = Math.min(k, p.size);
  const heaps: TopKHeap[] = [];
  const bits = p.bits;
  for (let i = 0; i < nq; i++) {
    const heap = new TopKHeap(keep);
    let thr = heap.threshold;
    const qo = i * w;
    for (let r = 0; r < p.size; r++) {
      const base = r * w;
      let h = 0;
      for (let u = 0; u < w; u++) {
        let x = ((qbits[qo + u] as number) ^ (bits[base + u] as number)) >>> 0;
        x = x - ((x >>> 1) & 0x55555555);
        x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
        x = (x + (x >>> 4)) & 0x0f0f0f0f;
        h += Math.imul(x, 0x01010101) >>> 24;
      }
      const v = -h;
      if (v >= thr) {
        heap.push(v, r);
        thr = heap.threshold;
      }
    }
    heaps.push(heap);
  }
  return heaps;
}

import { MrlError } from '@mrl/core/errors';
import { validateFunnel, type FunnelConfig } from './funnel.js';
import { gemmTopK, type Gemm } from './gemm.js';
import {
  quantizeBinary,
  quantizeInt8,
  quantizedOpsPerQuery,
  quantizedOpsPerRow,
  quantizedTopK,
  type Int8ScaleMode,
  type QuantizedPrefix,
} from './quantize.js';
import { rerankKernel, type RerankKernelName } from './rerank-kernel.js';
import { blockedTopK, type MatrixView } from './scoring.js';
import { TopKHeap } from './topk.js';
import { assertFiniteRows, assertIntInRange, rowCount } from './validate.js';

/*
 * One contiguous Float32Array holds the N x d vectors once; a prefix of row i at dim m is the
 * view data[i*d .. i*d+m) and is never copied. Cosine similarity on a prefix needs that
 * prefix's norm, which differs per m, so inverse norms are kept per prefix dim (N floats each,
 * computed in one pass at build for the configured prefix dims, lazily for any other): cosine
 * then costs one multiply per scored row on top of the dot product.
 *
 * FLOPs are counted on vector arithmetic: a multiply-add is 2, scaling a score by a row's
 * inverse norm is 1, a query's own norm at the final dim is 2*m. Heap comparisons are not
 * counted. Work that is done once for the index (norms of a new prefix dim) is reported apart,
 * as `oneOffFlops`, so per-query numbers stay comparable between runs.
 */

/** Similarity used for ranking: raw dot product, or cosine of the prefixes. */
export type Metric = 'dot' | 'cosine';

/** How to build a {@link MatryoshkaIndex}. */
export interface IndexOptions {
  /** Full embedding dim d; `vectors.length` must be N * d. */
  readonly dim: number;
  /** Default metric for searches. Default 'cosine'. */
  readonly metric?: Metric;
  /** Prefix dims whose norms are computed at build. Default: 8, 16, 32, ... below d, and d. */
  readonly prefixDims?: readonly number[];
  /** One id per row, kept and saved with the index. */
  readonly ids?: readonly string[];
  /** One integer class label per row (used by mAP@10 and saved with the index). */
  readonly labels?: Int32Array | readonly number[];
  /** Free JSON-serialisable metadata saved with the index. */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /**
   * Runs every float full scan (exact search, the first stage of shortlist/re-rank and
   * funnels) as blocked matrix products on this engine, e.g. `nativeGemm()` from
   * `@mrl/adaptive/node`, and an int8 or binary first stage on its int8 / Hamming top-k when it
   * has them. Default: the JavaScript scans in scoring.ts and quantize.ts.
   */
  readonly gemm?: Gemm;
}

/** Exact search at one prefix dim. */
export interface SearchOptions {
  readonly k: number;
  /** Prefix dim to search at; default the full dim. */
  readonly dim?: number;
  readonly metric?: Metric;
}

/** Two-stage search: shortlist at a small dim, re-rank the shortlist at a larger one. */
export interface ShortlistRerankOptions {
  /** Ds: prefix dim of the first (full-scan) stage. */
  readonly shortlistDim: number;
  /** Rows kept by the first stage; >= k. */
  readonly shortlistK: number;
  /** Dr: prefix dim of the float re-rank. */
  readonly rerankDim: number;
  readonly k: number;
  readonly metric?: Metric;
  /** A quantised copy of the Ds-prefix (from {@link MatryoshkaIndex.quantize}) to scan instead of floats. */
  readonly firstStage?: QuantizedPrefix;
}

/** A funnel search (see {@link FunnelConfig}). */
export interface FunnelOptions extends FunnelConfig {
  readonly k: number;
  readonly metric?: Metric;
}

/** What to quantise for a first stage. */
export type QuantizeSpec =
  | { readonly kind: 'int8'; readonly dim: number; readonly scale?: Int8ScaleMode }
  | { readonly kind: 'binary'; readonly dim: number };

/** One stage of a search, for reports. */
export interface StageReport {
  readonly dim: number;
  /** 'hnsw': an approximate graph search (Node entry's `PrefixHnsw`), not a full scan. */
  readonly kind: 'float' | 'int8' | 'binary' | 'hnsw';
  /** Rows scored per query at this stage. */
  readonly candidatesPerQuery: number;
  /** Rows passed on per query. */
  readonly kept: number;
  readonly flopsPerQuery: number;
}

/** Hits of a batch of queries: row indices and scores, best first, `k` per query. */
export interface SearchResult {
  readonly numQueries: number;
  /** Hits per query: min(requested k, index size). */
  readonly k: number;
  /** [numQueries, k] row indices; query q's hits are ids.subarray(q * k, (q + 1) * k). */
  readonly ids: Int32Array;
  /** [numQueries, k] scores at the last stage's dim (cosine or dot). */
  readonly scores: Float32Array;
  /** FLOPs spent on the queries (see the counting note in vector-index.ts). */
  readonly flops: number;
  readonly flopsPerQuery: number;
  /** One-off index work this call triggered (norms of a prefix dim not computed before). */
  readonly oneOffFlops: number;
  readonly stages: readonly StageReport[];
}

interface Stage {
  readonly dim: number;
  readonly keep: number;
  readonly quantized?: QuantizedPrefix;
}

function defaultPrefixDims(d: number): number[] {
  const dims: number[] = [];
  for (let m = 8; m < d; m *= 2) dims.push(m);
  dims.push(d);
  return dims;
}

function checkMetric(metric: string): Metric {
  if (metric !== 'dot' && metric !== 'cosine') {
    throw new MrlError('invalid-argument', `metric must be 'dot' or 'cosine', got '${metric}'`);
  }
  return metric;
}

/**
 * An adaptive retrieval index over Matryoshka embeddings: exact search at any prefix dim,
 * shortlist/re-rank, funnels, and int8/binary first stages, all on one copy of the vectors.
 * Reference: Kusupati et al., "Matryoshka Representation Learning", NeurIPS 2022, Sec. 5.3.
 *
 * @example
 * ```ts
 * const index = MatryoshkaIndex.fromVectors(vectors, { dim: 256 }); // vectors: [N, 256]
 * const exact = index.search(queries, { k: 10 });
 * const fast = index.funnel(queries, { dims: [16, 64, 256], shortlists: [200, 50], k: 10 });
 * console.log(fast.flopsPerQuery / exact.flopsPerQuery);
 * ```
 */
export class MatryoshkaIndex {
  /** [size, dim] row-major; adopted, not copied. */
  readonly vectors: Float32Array;
  readonly size: number;
  readonly dim: number;
  readonly metric: Metric;
  readonly prefixDims: readonly number[];
  readonly ids: readonly string[] | undefined;
  readonly labels: Int32Array | undefined;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The product engine of full scans, when one was given (see {@link IndexOptions.gemm}). */
  readonly gemm: Gemm | undefined;
  private readonly invNorms = new Map<number, Float32Array>();

  private constructor(vectors: Float32Array, options: IndexOptions) {
    assertIntInRange('index dim', options.dim, 1);
    if (!(vectors instanceof Float32Array)) {
      throw new MrlError(
        'invalid-argument',
        'index vectors must be a Float32Array',
        'convert with Float32Array.from(...)',
      );
    }
    this.vectors = vectors;
    this.dim = options.dim;
    this.size = rowCount('index vectors', vectors, options.dim);
    assertFiniteRows('index vectors', vectors, options.dim);
    this.metric = checkMetric(options.metric ?? 'cosine');
    const prefixDims = [...new Set(options.prefixDims ?? defaultPrefixDims(this.dim))].sort((a, b) => a - b);
    prefixDims.forEach((m, i) => assertIntInRange(`prefixDims[${i}]`, m, 1, this.dim));
    this.prefixDims = prefixDims;
    if (options.ids !== undefined && options.ids.length !== this.size) {
      throw new MrlError('invalid-argument', `ids has ${options.ids.length} entries for ${this.size} vectors`);
    }
    this.ids = options.ids;
    if (options.labels !== undefined) {
      if (options.labels.length !== this.size) {
        throw new MrlError('invalid-argument', `labels has ${options.labels.length} entries for ${this.size} vectors`);
      }
      const labels = options.labels instanceof Int32Array ? options.labels : Int32Array.from(options.labels);
      for (let i = 0; i < labels.length; i++) {
        if (labels[i] !== options.labels[i]) {
          throw new MrlError('invalid-argument', `labels[${i}] = ${String(options.labels[i])} is not a 32-bit integer`);
        }
      }
      this.labels = labels;
    } else {
      this.labels = undefined;
    }
    this.metadata = options.metadata ?? {};
    this.gemm = options.gemm;
    if (this.metric === 'cosine') this.computeInverseNorms(prefixDims);
  }

  /**
   * Builds an index over `vectors` ([N, dim], row-major), which it adopts without copying.
   *
   * @example
   * ```ts
   * const index = MatryoshkaIndex.fromVectors(new Float32Array(n * 128), { dim: 128, labels });
   * ```
   */
  static fromVectors(vectors: Float32Array, options: IndexOptions): MatryoshkaIndex {
    return new MatryoshkaIndex(vectors, options);
  }

  /**
   * A new index with `vectors` ([n, d] rows) appended after the existing rows; `ids` and
   * `labels` must be given for the new rows exactly when this index has them. Options
   * (metric, prefix dims, metadata, gemm) carry over. This index is not changed.
   *
   * @example
   * ```ts
   * const bigger = index.withAdded(newRows, { labels: [3, 7] });
   * ```
   */
  withAdded(
    vectors: Float32Array,
    extra: { readonly ids?: readonly string[]; readonly labels?: Int32Array | readonly number[] } = {},
  ): MatryoshkaIndex {
    const n = rowCount('added vectors', vectors, this.dim);
    assertFiniteRows('added vectors', vectors, this.dim);
    const need = (name: 'ids' | 'labels', have: boolean): void => {
      const given = extra[name] !== undefined;
      if (have !== given) {
        throw new MrlError(
          'invalid-argument',
          have
            ? `this index has ${name}: the ${n} added rows need ${name} too.`
            : `this index has no ${name}, but ${name} were given for the added rows.`,
        );
      }
    };
    need('ids', this.ids !== undefined);
    need('labels', this.labels !== undefined);
    const all = new Float32Array((this.size + n) * this.dim);
    all.set(this.vectors);
    all.set(vectors, this.vectors.length);
    return new MatryoshkaIndex(all, {
      ...this.options(),
      ...(this.ids !== undefined ? { ids: [...this.ids, ...(extra.ids ?? [])] } : {}),
      ...(this.labels !== undefined ? { labels: [...this.labels, ...(extra.labels ?? [])] } : {}),
    });
  }

  /**
   * A new index without the given rows; the rows after a removed one move up (row numbers are
   * positions, ids stay with their rows). This index is not changed.
   *
   * @example
   * ```ts
   * const smaller = index.withRemoved([3, 17]);
   * ```
   */
  withRemoved(rows: readonly number[]): MatryoshkaIndex {
    const drop = new Set<number>();
    rows.forEach((r, i) => {
      assertIntInRange(`rows[${i}] to remove`, r, 0, this.size - 1);
      drop.add(r);
    });
    const kept = this.size - drop.size;
    if (kept === 0) {
      throw new MrlError(
        'invalid-argument',
        `removing ${drop.size} rows would leave the index empty.`,
        'Keep at least one row.',
      );
    }
    const d = this.dim;
    const out = new Float32Array(kept * d);
    const ids: string[] = [];
    const labels: number[] = [];
    let o = 0;
    for (let i = 0; i < this.size; i++) {
      if (drop.has(i)) continue;
      out.set(this.vectors.subarray(i * d, (i + 1) * d), o * d);
      if (this.ids !== undefined) ids.push(this.ids[i] as string);
      if (this.labels !== undefined) labels.push(this.labels[i] as number);
      o++;
    }
    return new MatryoshkaIndex(out, {
      ...this.options(),
      ...(this.ids !== undefined ? { ids } : {}),
      ...(this.labels !== undefined ? { labels } : {}),
    });
  }

  /** The build options that carry over to a changed copy (all but the rows themselves). */
  private options(): IndexOptions {
    return {
      dim: this.dim,
      metric: this.metric,
      prefixDims: this.prefixDims,
      metadata: this.metadata,
      ...(this.gemm !== undefined ? { gemm: this.gemm } : {}),
    };
  }

  /**
   * The first `m` values of row `i`, as a view (no copy).
   *
   * @example
   * ```ts
   * index.prefix(0, 16); // Float32Array(16) sharing memory with the index
   * ```
   */
  prefix(i: number, m: number = this.dim): Float32Array {
    assertIntInRange('row', i, 0, this.size - 1);
    assertIntInRange('prefix dim', m, 1, this.dim);
    return this.vectors.subarray(i * this.dim, i * this.dim + m);
  }

  /**
   * 1 / ||row[:m]|| for every row (0 for a zero prefix), cached per m.
   *
   * @example
   * ```ts
   * const inv = index.prefixInverseNorms(64); // Float32Array(N)
   * ```
   */
  prefixInverseNorms(m: number): Float32Array {
    assertIntInRange('prefix dim', m, 1, this.dim);
    const cached = this.invNorms.get(m);
    if (cached !== undefined) return cached;
    this.computeInverseNorms([m]);
    return this.invNorms.get(m) as Float32Array;
  }

  /**
   * Exact search at prefix dim `dim` (default d): a blocked scan of every row.
   *
   * @example
   * ```ts
   * const r = index.search(queries, { k: 10, dim: 64 }); // queries: [nq, d]
   * r.ids.subarray(0, 10); // hits of query 0
   * ```
   */
  search(queries: Float32Array, options: SearchOptions): SearchResult {
    const dim = options.dim ?? this.dim;
    assertIntInRange('search dim', dim, 1, this.dim);
    assertIntInRange('k', options.k, 1);
    return this.run(queries, [{ dim, keep: options.k }], options.metric);
  }

  /**
   * Scans every row at `shortlistDim` (floats, or the given quantised prefix), keeps
   * `shortlistK`, re-ranks those in float at `rerankDim`, and returns the best `k`. With
   * shortlistDim = rerankDim = d it returns exactly what {@link search} returns.
   *
   * @example
   * ```ts
   * index.shortlistRerank(queries, { shortlistDim: 16, shortlistK: 200, rerankDim: 256, k: 10 });
   * const bits = index.quantize({ kind: 'binary', dim: 256 });
   * index.shortlistRerank(queries, { shortlistDim: 256, shortlistK: 200, rerankDim: 256, k: 10, firstStage: bits });
   * ```
   */
  shortlistRerank(queries: Float32Array, options: ShortlistRerankOptions): SearchResult {
    const { shortlistDim, shortlistK, rerankDim, k, firstStage } = options;
    assertIntInRange('shortlistDim', shortlistDim, 1, this.dim);
    assertIntInRange('rerankDim', rerankDim, 1, this.dim);
    assertIntInRange('k', k, 1);
    assertIntInRange('shortlistK', shortlistK, 1);
    if (shortlistK < k) {
      throw new MrlError(
        'invalid-argument',
        `shortlistK = ${shortlistK} is smaller than k = ${k}`,
        `raise shortlistK to at least ${k}`,
      );
    }
    if (firstStage !== undefined) {
      if (firstStage.dim !== shortlistDim) {
        throw new MrlError(
          'invalid-argument',
          `firstStage was quantised at dim ${firstStage.dim} but shortlistDim is ${shortlistDim}`,
          'quantise the same prefix you shortlist at',
        );
      }
      if (firstStage.size !== this.size) {
        throw new MrlError('invalid-argument', `firstStage holds ${firstStage.size} rows, the index ${this.size}`);
      }
    }
    const first: Stage =
      firstStage === undefined
        ? { dim: shortlistDim, keep: shortlistK }
        : { dim: shortlistDim, keep: shortlistK, quantized: firstStage };
    return this.run(queries, [first, { dim: rerankDim, keep: k }], options.metric);
  }

  /**
   * Funnel search: full scan at `dims[0]`, then re-rank the shrinking shortlists at the
   * following dims (validated by {@link validateFunnel}).
   *
   * @example
   * ```ts
   * index.funnel(queries, { dims: [16, 32, 64, 128, 256], shortlists: [200, 100, 50, 25], k: 10 });
   * ```
   */
  funnel(queries: Float32Array, options: FunnelOptions): SearchResult {
    validateFunnel(options, this.dim, options.k);
    const stages: Stage[] = options.dims.map((dim, i) => ({ dim, keep: options.shortlists[i] ?? options.k }));
    return this.run(queries, stages, options.metric);
  }

  /**
   * Exact re-rank of given candidates: for each query, scores its `perQuery` candidate rows
   * (`candidates[q * perQuery + c]`; -1 marks an empty slot, duplicates are scored once) at
   * prefix `dim` (default d) and keeps the best `k`. The second stage of any external first
   * stage: an HNSW shortlist, a database's approximate search. Queries with fewer than `k`
   * valid candidates get -1 ids and -Infinity scores in the remaining slots.
   *
   * @example
   * ```ts
   * const hits = index.rerank(queries, shortlist, 200, { k: 10 }); // shortlist: [nq, 200] row ids
   * ```
   */
  rerank(
    queries: Float32Array,
    candidates: Int32Array,
    perQuery: number,
    options: {
      readonly k: number;
      readonly dim?: number;
      readonly metric?: Metric;
      /** Dot-product kernel (see {@link rerankKernel}); default 'auto': wasm SIMD where available. */
      readonly kernel?: 'auto' | RerankKernelName;
    },
  ): SearchResult {
    const metric = checkMetric(options.metric ?? this.metric);
    const m = options.dim ?? this.dim;
    assertIntInRange('rerank dim', m, 1, this.dim);
    assertIntInRange('k', options.k, 1);
    assertIntInRange('candidates per query', perQuery, 1);
    if (!(queries instanceof Float32Array)) {
      throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
    }
    const nq = rowCount('queries', queries, this.dim);
    assertFiniteRows('queries', queries, this.dim);
    if (candidates.length !== nq * perQuery) {
      throw new MrlError(
        'invalid-argument',
        `candidates has ${candidates.length} ids for ${nq} queries x ${perQuery} per query.`,
        'Pass one row of candidate ids per query.',
      );
    }
    const kernel = rerankKernel(options.kernel ?? 'auto');
    const d = this.dim;
    const cosine = metric === 'cosine';
    const oneOffFlops = cosine ? this.computeInverseNorms([m]) : 0;
    const rowScale = cosine ? this.invNorms.get(m) : undefined;
    const k = Math.min(options.k, this.size);
    const ids = new Int32Array(nq * k).fill(-1);
    const scores = new Float32Array(nq * k).fill(Number.NEGATIVE_INFINITY);
    const heap = new TopKHeap(k);
    const x = this.vectors;
    // One query's distinct valid candidates, in their order, and their dot products.
    const rows = new Int32Array(perQuery);
    const dots = new Float64Array(perQuery);
    // Duplicates are found in an open-addressing table of ids (2-4x perQuery slots, -1 empty).
    const slots = 1 << Math.ceil(Math.log2(2 * perQuery));
    const mask = slots - 1;
    const table = new Int32Array(slots);
    let scored = 0;
    for (let q = 0; q < nq; q++) {
      const qo = q * d;
      table.fill(-1);
      let n = 0;
      for (let c = 0; c < perQuery; c++) {
        const id = candidates[q * perQuery + c] as number;
        if (id === -1) continue;
        if (!(id >= 0 && id < this.size)) {
          throw new MrlError(
            'invalid-argument',
            `candidates[${q * perQuery + c}] = ${id} is not a row of this index (0..${this.size - 1}).`,
          );
        }
        let h = (Math.imul(id, 0x9e3779b1) >>> 0) & mask;
        while (table[h] !== -1 && table[h] !== id) h = (h + 1) & mask;
        if (table[h] === id) continue;
        table[h] = id;
        rows[n++] = id;
      }
      kernel.dots(queries, qo, x, d, m, rows, n, dots);
      for (let c = 0; c < n; c++) {
        const id = rows[c] as number;
        let dot = dots[c] as number;
        if (rowScale !== undefined) dot *= rowScale[id] as number;
        heap.push(dot, id);
      }
      scored += n;
      let inv = 1;
      if (cosine) {
        let ss = 0;
        for (let j = 0; j < m; j++) ss += (queries[qo + j] as number) ** 2;
        inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      }
      const got = heap.drainInto(ids, scores, q * k);
      for (let c = 0; c < got; c++) scores[q * k + c] = (scores[q * k + c] as number) * inv;
    }
    const perRow = 2 * m + (rowScale ? 1 : 0);
    const flops = scored * perRow + (cosine ? nq * 2 * m : 0);
    return {
      numQueries: nq,
      k,
      ids,
      scores,
      flops,
      flopsPerQuery: flops / nq,
      oneOffFlops,
      stages: [{ dim: m, kind: 'float', candidatesPerQuery: scored / nq, kept: k, flopsPerQuery: flops / nq }],
    };
  }

  /**
   * A quantised copy of one prefix for use as `firstStage` in {@link shortlistRerank}.
   *
   * @example
   * ```ts
   * const q8 = index.quantize({ kind: 'int8', dim: 64, scale: 'per-dim' });
   * ```
   */
  quantize(spec: QuantizeSpec): QuantizedPrefix {
    assertIntInRange('quantised prefix dim', spec.dim, 1, this.dim);
    const view: MatrixView = { data: this.vectors, rows: this.size, stride: this.dim };
    if (spec.kind === 'int8') return quantizeInt8(view, spec.dim, spec.scale ?? 'per-vector');
    if (spec.kind === 'binary') return quantizeBinary(view, spec.dim);
    throw new MrlError(
      'invalid-argument',
      `quantisation kind must be 'int8' or 'binary', got '${String((spec as { kind: unknown }).kind)}'`,
    );
  }

  private computeInverseNorms(dims: readonly number[]): number {
    const todo = dims.filter((m) => !this.invNorms.has(m)).sort((a, b) => a - b);
    if (todo.length === 0) return 0;
    const outs = todo.map(() => new Float32Array(this.size));
    const d = this.dim;
    const x = this.vectors;
    const last = todo[todo.length - 1] as number;
    // One pass per row: a running sum of squares read off at each requested dim.
    for (let i = 0; i < this.size; i++) {
      const base = i * d;
      let ss = 0;
      let j = 0;
      for (let t = 0; t < todo.length; t++) {
        const m = todo[t] as number;
        for (; j < m; j++) {
          const v = x[base + j] as number;
          ss += v * v;
        }
        (outs[t] as Float32Array)[i] = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      }
    }
    todo.forEach((m, t) => this.invNorms.set(m, outs[t] as Float32Array));
    return this.size * 2 * last;
  }

  private run(queries: Float32Array, stages: readonly Stage[], metricOption: Metric | undefined): SearchResult {
    const metric = checkMetric(metricOption ?? this.metric);
    if (!(queries instanceof Float32Array)) {
      throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
    }
    const nq = rowCount('queries', queries, this.dim);
    assertFiniteRows('queries', queries, this.dim);
    const d = this.dim;
    const cosine = metric === 'cosine';
    let oneOffFlops = 0;
    if (cosine)
      oneOffFlops += this.computeInverseNorms(stages.filter((s) => s.quantized?.kind !== 'binary').map((s) => s.dim));
    const qView: MatrixView = { data: queries, rows: nq, stride: d };
    const reports: StageReport[] = [];
    let flops = 0;

    // Stage 0: scan every row.
    const s0 = stages[0] as Stage;
    const rowScale0 = cosine && s0.quantized?.kind !== 'binary' ? this.invNorms.get(s0.dim) : undefined;
    let heaps: TopKHeap[];
    let perQuery: number;
    if (s0.quantized === undefined) {
      heaps =
        this.gemm !== undefined
          ? gemmTopK(this.gemm, queries, nq, this.vectors, this.size, d, s0.dim, s0.keep, rowScale0)
          : blockedTopK(qView, { data: this.vectors, rows: this.size, stride: d }, s0.dim, s0.keep, rowScale0);
      perQuery = this.size * (2 * s0.dim + (rowScale0 ? 1 : 0));
    } else {
      heaps = quantizedTopK(s0.quantized, qView, s0.keep, rowScale0, this.gemm);
      perQuery =
        quantizedOpsPerQuery(s0.quantized) + this.size * (quantizedOpsPerRow(s0.quantized) + (rowScale0 ? 1 : 0));
    }
    let count = Math.min(s0.keep, this.size);
    reports.push({
      dim: s0.dim,
      kind: s0.quantized?.kind ?? 'float',
      candidatesPerQuery: this.size,
      kept: count,
      flopsPerQuery: perQuery,
    });
    flops += nq * perQuery;
    let ids = new Int32Array(nq * count);
    let scores = new Float32Array(nq * count);
    heaps.forEach((h, q) => h.drainInto(ids, scores, q * count));

    // Later stages: float re-rank of the candidates at a larger prefix (the re-rank kernel:
    // wasm SIMD where available, sums bit-identical to the JavaScript loop).
    const kernel = rerankKernel('auto');
    for (let s = 1; s < stages.length; s++) {
      const stage = stages[s] as Stage;
      const m = stage.dim;
      const keep = Math.min(stage.keep, count);
      const rowScale = cosine ? this.invNorms.get(m) : undefined;
      const nextIds = new Int32Array(nq * keep);
      const nextScores = new Float32Array(nq * keep);
      const heap = new TopKHeap(keep);
      const dots = new Float64Array(count);
      for (let q = 0; q < nq; q++) {
        const rows = ids.subarray(q * count, (q + 1) * count);
        kernel.dots(queries, q * d, this.vectors, d, m, rows, count, dots);
        for (let c = 0; c < count; c++) {
          const id = rows[c] as number;
          let dot = dots[c] as number;
          if (rowScale !== undefined) dot *= rowScale[id] as number;
          heap.push(dot, id);
        }
        heap.drainInto(nextIds, nextScores, q * keep);
      }
      const stageFlops = count * (2 * m + (rowScale ? 1 : 0));
      reports.push({ dim: m, kind: 'float', candidatesPerQuery: count, kept: keep, flopsPerQuery: stageFlops });
      flops += nq * stageFlops;
      ids = nextIds;
      scores = nextScores;
      count = keep;
    }

    // Cosine: divide by the query's norm at the final dim (ranking is unchanged by it).
    const lastStage = stages[stages.length - 1] as Stage;
    if (cosine && lastStage.quantized?.kind !== 'binary') {
      const m = lastStage.dim;
      for (let q = 0; q < nq; q++) {
        let ss = 0;
        for (let j = 0; j < m; j++) {
          const v = queries[q * d + j] as number;
          ss += v * v;
        }
        const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
        for (let c = 0; c < count; c++) scores[q * count + c] = (scores[q * count + c] as number) * inv;
      }
      flops += nq * 2 * m;
    }
    return { numQueries: nq, k: count, ids, scores, flops, flopsPerQuery: flops / nq, oneOffFlops, stages: reports };
  }
}

/*
 * ANN first stage: an HNSW graph over a short prefix of every vector (usearch), then the exact
 * re-rank at the full dim in MatryoshkaIndex.rerank. This is the paper's deployment (Kusupati
 * et al. 2022, Sec. 5.3: HNSW on the first m dims shortlists K, the full vector re-ranks).
 *
 * Why usearch (Unum, npm `usearch`): it ships prebuilt N-API binaries for linux x64/arm64,
 * macOS and Windows inside the npm package (no compiler at install, no download), builds and
 * searches HNSW with float32, int8 and binary (1 bit per dim, Hamming) vectors, and is
 * maintained (monthly releases). hnswlib-node needs a C++ toolchain at install and holds
 * float32 only, so an int8 or binary first stage would not shrink.
 *
 * The graph scores cosine on the prefix: prefixes are L2-normalised before they go in (int8
 * quantisation then uses its full [-127, 127] range), binary keeps the sign bits. The first
 * stage only has to rank the right rows into the top K; the re-rank uses the index's metric.
 */
import * as fs from 'node:fs';
import { MrlError } from '@mrl/core/errors';
import usearch, { type Index as UsearchIndex, type ScalarKind } from 'usearch';
import type { SearchResult, StageReport } from '../vector-index.js';
import type { MatryoshkaIndex, Metric } from '../vector-index.js';
import { assertFiniteRows, assertIntInRange, rowCount } from '../validate.js';

/**
 * Scalar type of the graph's vectors: 4 bytes, 2 bytes (IEEE half: 11 significant bits, enough
 * to rank unit prefixes whose neighbours lie within 0.01 in cosine), 1 byte, or 1 bit per dim.
 */
export type HnswQuantization = 'f32' | 'f16' | 'i8' | 'b1';

/** How to build a {@link PrefixHnsw}. */
export interface PrefixHnswOptions {
  /** m: the prefix dim the graph is built on (8-64 in the paper). */
  readonly dim: number;
  /** Default 'f32'. */
  readonly quantization?: HnswQuantization;
  /** M, graph edges per node. Default 16. */
  readonly connectivity?: number;
  /** efConstruction. Default 128. */
  readonly expansionAdd?: number;
  /** efSearch; raise it for recall (it must be >= the shortlist size to pay off). Default 64. */
  readonly expansionSearch?: number;
  /** Threads for building; searches run on one thread unless told otherwise. Default 1. */
  readonly threads?: number;
}

/** A two-stage search through a {@link PrefixHnsw}. */
export interface HnswSearchOptions {
  /** K: rows the graph shortlists per query. */
  readonly shortlistK: number;
  readonly k: number;
  /** Prefix dim of the exact re-rank; default the index's full dim. */
  readonly rerankDim?: number;
  readonly metric?: Metric;
  /** Threads for the graph search. Default 1. */
  readonly threads?: number;
}

const SCALAR: Record<HnswQuantization, ScalarKind> = {
  f32: usearch.ScalarKind.F32,
  f16: usearch.ScalarKind.F16,
  i8: usearch.ScalarKind.I8,
  b1: usearch.ScalarKind.B1,
};

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Bytes one vector of the first stage takes (graph links not counted). */
function vectorBytes(dim: number, q: HnswQuantization): number {
  return q === 'f32' ? 4 * dim : q === 'f16' ? 2 * dim : q === 'i8' ? dim : Math.ceil(dim / 8);
}

/**
 * Contiguous copies of the first `m` values of `rows` [n, stride], L2-normalised (binary
 * graphs keep the raw values: only the signs count).
 */
function prefixes(rows: Float32Array, n: number, stride: number, m: number, normalise: boolean): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < m; j++) {
      const v = rows[i * stride + j] as number;
      out[i * m + j] = v;
      ss += v * v;
    }
    if (normalise && ss > 0) {
      const inv = 1 / Math.sqrt(ss);
      for (let j = 0; j < m; j++) out[i * m + j] = (out[i * m + j] as number) * inv;
    }
  }
  return out;
}

function emptyGraph(
  dim: number,
  quantization: HnswQuantization,
  connectivity: number,
  expansionAdd: number,
  expansionSearch: number,
): UsearchIndex {
  return new usearch.Index({
    dimensions: dim,
    metric: quantization === 'b1' ? usearch.MetricKind.Hamming : usearch.MetricKind.IP,
    quantization: SCALAR[quantization],
    connectivity,
    expansion_add: expansionAdd,
    expansion_search: expansionSearch,
    multi: false,
  });
}

/**
 * An HNSW graph (usearch) over the first `dim` values of every row of a
 * {@link MatryoshkaIndex}, keyed by row number, for a shortlist that the index re-ranks.
 *
 * @example
 * ```ts
 * const graph = PrefixHnsw.build(index, { dim: 64, quantization: 'i8', expansionSearch: 128 });
 * const hits = graph.search(queries, { shortlistK: 100, k: 10 }); // exact re-rank at d
 * ```
 */
export class PrefixHnsw {
  readonly dim: number;
  readonly quantization: HnswQuantization;
  readonly expansionSearch: number;
  /** Bytes of the first-stage vectors (size x per-vector bytes), without the graph's links. */
  readonly vectorBytes: number;
  private constructor(
    readonly index: MatryoshkaIndex,
    private readonly graph: UsearchIndex,
    options: Required<Pick<PrefixHnswOptions, 'dim' | 'quantization' | 'expansionSearch'>>,
  ) {
    this.dim = options.dim;
    this.quantization = options.quantization;
    this.expansionSearch = options.expansionSearch;
    this.vectorBytes = index.size * vectorBytes(options.dim, options.quantization);
  }

  /**
   * Builds the graph over every row of `index` (a copy of the prefixes goes into usearch's
   * memory; the index itself is not touched).
   *
   * @example
   * ```ts
   * const graph = PrefixHnsw.build(index, { dim: 32, quantization: 'b1' });
   * ```
   */
  static build(index: MatryoshkaIndex, options: PrefixHnswOptions): PrefixHnsw {
    assertIntInRange('HNSW prefix dim', options.dim, 1, index.dim);
    const quantization = options.quantization ?? 'f32';
    if (!(quantization in SCALAR)) {
      throw new MrlError(
        'invalid-argument',
        `HNSW quantization must be 'f32', 'f16', 'i8' or 'b1', got '${String(quantization)}'.`,
      );
    }
    if (quantization === 'b1' && options.dim % 8 !== 0) {
      throw new MrlError(
        'invalid-argument',
        `a binary HNSW first stage packs 8 dims per byte; its dim must be a multiple of 8, got ${options.dim}.`,
        `Use dim ${Math.max(8, Math.round(options.dim / 8) * 8)}.`,
      );
    }
    const connectivity = options.connectivity ?? 16;
    const expansionAdd = options.expansionAdd ?? 128;
    const expansionSearch = options.expansionSearch ?? 64;
    assertIntInRange('HNSW connectivity', connectivity, 2, 1024);
    assertIntInRange('HNSW expansionAdd', expansionAdd, 1);
    assertIntInRange('HNSW expansionSearch', expansionSearch, 1);
    const threads = options.threads ?? 1;
    assertIntInRange('HNSW build threads', threads, 1, 1024);
    const graph = emptyGraph(options.dim, quantization, connectivity, expansionAdd, expansionSearch);
    const keys = new BigUint64Array(index.size);
    for (let i = 0; i < index.size; i++) keys[i] = BigInt(i);
    graph.add(keys, prefixes(index.vectors, index.size, index.dim, options.dim, quantization !== 'b1'), threads);
    return new PrefixHnsw(index, graph, { dim: options.dim, quantization, expansionSearch });
  }

  /** Rows in the graph. */
  get size(): number {
    return this.graph.size();
  }

  /**
   * The graph's `shortlistK` nearest rows per query ([nq, shortlistK] row ids, -1 where the
   * graph found fewer), by cosine of the prefixes.
   *
   * @example
   * ```ts
   * const ids = graph.shortlist(queries, 100);
   * ```
   */
  shortlist(queries: Float32Array, shortlistK: number, threads = 1): Int32Array {
    assertIntInRange('shortlistK', shortlistK, 1);
    assertIntInRange('HNSW search threads', threads, 1, 1024);
    if (!(queries instanceof Float32Array)) {
      throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
    }
    const d = this.index.dim;
    const nq = rowCount('queries', queries, d);
    assertFiniteRows('queries', queries, d);
    const q = prefixes(queries, nq, d, this.dim, this.quantization !== 'b1');
    const wanted = Math.min(shortlistK, this.size);
    const found = this.graph.search(q, wanted, threads);
    const out = new Int32Array(nq * shortlistK).fill(-1);
    // One query comes back as Matches, several as BatchMatches; both hold [nq, wanted] keys.
    const counts = found instanceof usearch.BatchMatches ? found.counts : BigUint64Array.of(BigInt(found.keys.length));
    // Keys are row numbers (< 2^31): on a little-endian machine the low 32-bit word of each
    // u64 key is the row, read through a Uint32Array view instead of a BigInt per key.
    const keys = found.keys;
    const low = LITTLE_ENDIAN ? new Uint32Array(keys.buffer, keys.byteOffset, 2 * keys.length) : undefined;
    for (let i = 0; i < nq; i++) {
      const got = Number(counts[i]);
      const from = i * wanted;
      const to = i * shortlistK;
      if (low !== undefined) for (let c = 0; c < got; c++) out[to + c] = low[2 * (from + c)] as number;
      else for (let c = 0; c < got; c++) out[to + c] = Number(keys[from + c]);
    }
    return out;
  }

  /**
   * Two-stage search: the graph's shortlist, then the exact re-rank at `rerankDim` (default d)
   * in the index.
   *
   * @example
   * ```ts
   * graph.search(queries, { shortlistK: 200, k: 10 });
   * ```
   */
  search(queries: Float32Array, options: HnswSearchOptions): SearchResult {
    assertIntInRange('k', options.k, 1);
    if (options.shortlistK < options.k) {
      throw new MrlError(
        'invalid-argument',
        `shortlistK = ${options.shortlistK} is smaller than k = ${options.k}.`,
        `Raise shortlistK to at least ${options.k}.`,
      );
    }
    const ids = this.shortlist(queries, options.shortlistK, options.threads ?? 1);
    const r = this.index.rerank(queries, ids, options.shortlistK, {
      k: options.k,
      ...(options.rerankDim !== undefined ? { dim: options.rerankDim } : {}),
      ...(options.metric !== undefined ? { metric: options.metric } : {}),
    });
    // Graph work is not counted in FLOPs: it depends on the walk, not on a formula.
    const first: StageReport = {
      dim: this.dim,
      kind: 'hnsw',
      candidatesPerQuery: this.size,
      kept: options.shortlistK,
      flopsPerQuery: 0,
    };
    return { ...r, stages: [first, ...r.stages] };
  }

  /**
   * Writes the graph in usearch's format, atomically: to `<file>.tmp-<pid>`, fsynced, then
   * renamed over `file`, so a reader sees the old graph or the new one.
   *
   * @example
   * ```ts
   * graph.save('products.hnsw');
   * ```
   */
  save(file: string): void {
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      this.graph.save(tmp);
      const fd = fs.openSync(tmp, 'r+');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
    } catch (cause) {
      fs.rmSync(tmp, { force: true });
      throw new MrlError(
        'invalid-argument',
        `cannot write HNSW graph ${file}: ${(cause as Error).message}.`,
        'Check that its directory exists and is writable.',
        { cause },
      );
    }
  }

  /**
   * Opens a graph written by {@link save} for `index` memory-mapped (usearch `view`: the file
   * is not read into the heap). `options` must repeat the build's dim and quantization;
   * `expansionSearch` may differ (it is a search-time setting).
   *
   * @example
   * ```ts
   * const graph = PrefixHnsw.view(index, 'products.hnsw', { dim: 64, quantization: 'i8', expansionSearch: 256 });
   * ```
   */
  static view(index: MatryoshkaIndex, file: string, options: PrefixHnswOptions): PrefixHnsw {
    const quantization = options.quantization ?? 'f32';
    const expansionSearch = options.expansionSearch ?? 64;
    assertIntInRange('HNSW prefix dim', options.dim, 1, index.dim);
    assertIntInRange('HNSW expansionSearch', expansionSearch, 1);
    if (!fs.existsSync(file)) {
      throw new MrlError(
        'missing-file',
        `HNSW graph ${file} does not exist.`,
        'Build it with PrefixHnsw.build and save it first.',
      );
    }
    const graph = emptyGraph(
      options.dim,
      quantization,
      options.connectivity ?? 16,
      options.expansionAdd ?? 128,
      expansionSearch,
    );
    try {
      graph.view(file);
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `HNSW graph ${file} cannot be opened: ${(cause as Error).message}.`,
        'Build and save the graph again.',
        { cause },
      );
    }
    if (graph.dimensions() !== options.dim || graph.size() !== index.size) {
      throw new MrlError(
        'corrupt-file',
        `HNSW graph ${file} holds ${graph.size()} vectors of dim ${graph.dimensions()}, but the index has ${index.size} rows and the prefix dim is ${options.dim}.`,
        'Open it with the index and options it was built for, or build it again.',
      );
    }
    return new PrefixHnsw(index, graph, { dim: options.dim, quantization, expansionSearch });
  }
}

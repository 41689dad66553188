import * as fs from 'node:fs';
import { MrlError } from '@mrl/core/errors';
import type { Gemm } from '../gemm.js';
import type { QuantizedPrefix } from '../quantize.js';
import { quantizedOpsPerQuery, quantizedOpsPerRow, quantizedTopK } from '../quantize.js';
import { assertFiniteRows, assertIntInRange, rowCount } from '../validate.js';
import { MatryoshkaIndex, type Metric, type QuantizeSpec, type SearchResult } from '../vector-index.js';
import { crc32 } from './crc32.js';
import {
  checkCrc,
  corrupt,
  FIXED_HEADER,
  type IndexFileLayout,
  parseFirstStage,
  parseLayout,
  parseMetadata,
  unreadable,
} from './index-file.js';

/** Queries re-ranked together: their shortlisted rows are read from disk in one sorted pass. */
const RERANK_QUERY_BATCH = 64;
/** Longest run of consecutive rows read with one call. */
const MAX_READ_BYTES = 1 << 20;

/** Options of {@link ChunkedIndex.search}. */
export interface ChunkedSearchOptions {
  readonly k: number;
  /** Rows kept per query by the stored first stage, then re-ranked at the full dim. */
  readonly shortlistK: number;
}

/**
 * An index file opened without reading its rows: the header, labels, ids, the stored quantised
 * first stage (see `saveIndex`'s `firstStage`) and the per-row checksums go into memory; the
 * float32 rows stay on disk and are read (`fs.readSync` at their offsets, each row checked
 * against its CRC-32) when a search re-ranks them. Heap use is about N x (first-stage bytes +
 * 8) instead of N x 4d; each query reads its `shortlistK` rows.
 *
 * @example
 * ```ts
 * saveIndex(index, 'db.mrlidx', { firstStage: { kind: 'int8', dim: 64 } });
 * const db = ChunkedIndex.open('db.mrlidx');
 * const hits = db.search(queries, { k: 10, shortlistK: 100 }); // int8(64) scan, re-rank at d
 * db.close();
 * ```
 */
export class ChunkedIndex {
  readonly size: number;
  readonly dim: number;
  readonly metric: Metric;
  readonly prefixDims: readonly number[];
  readonly ids: readonly string[] | undefined;
  readonly labels: Int32Array | undefined;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The stored first stage, as written (`undefined` when the file has none). */
  readonly firstStageSpec: QuantizeSpec | undefined;
  readonly firstStage: QuantizedPrefix | undefined;
  /** Bytes this object holds in memory (labels, first stage, row checksums); ids not counted. */
  readonly heapBytes: number;
  /** Rows read from disk so far (each verified). */
  rowsRead = 0;
  private fd: number | undefined;
  /** The engine of the first-stage scan (`open`'s `gemm`); undefined: the JavaScript scan. */
  readonly gemm: Gemm | undefined;
  private readonly invNorms: Float32Array | undefined;
  private readonly rowCrcs: Uint32Array;

  private constructor(
    readonly file: string,
    fd: number,
    private readonly layout: IndexFileLayout,
    header: Buffer,
    tail: Uint8Array,
    gemm: Gemm | undefined,
  ) {
    this.fd = fd;
    this.gemm = gemm;
    const meta = parseMetadata(file, layout, header);
    this.size = layout.size;
    this.dim = layout.dim;
    this.metric = meta.metric;
    this.prefixDims = meta.prefixDims;
    this.ids = meta.ids;
    this.metadata = meta.metadata ?? {};
    this.firstStageSpec = meta.firstStage;
    const n = layout.size;
    // tail = [labels][first stage][row CRCs], all 4-byte aligned from its start.
    let at = 0;
    if (layout.labelsOffset !== undefined) {
      this.labels = new Int32Array(tail.buffer, tail.byteOffset, n);
      at += 4 * n;
    } else {
      this.labels = undefined;
    }
    if (meta.firstStage !== undefined) {
      const parsed = parseFirstStage(meta.firstStage, tail.subarray(at, at + layout.firstStageBytes), n);
      this.firstStage = parsed.prefix;
      this.invNorms = parsed.invNorms;
    } else {
      this.firstStage = undefined;
      this.invNorms = undefined;
    }
    at += layout.firstStageBytes;
    this.rowCrcs = new Uint32Array(tail.buffer, tail.byteOffset + at, n);
    this.heapBytes = header.length + tail.byteLength;
  }

  /**
   * Opens `file` (format version 2): reads and checks everything but the rows. With
   * `verify: true` it also streams every row through its checksum (in 1 MiB reads, nothing
   * kept), which a full `openIndex` does anyway. With `gemm` (e.g. `nativeGemm()`) the stored
   * int8 or binary first stage is scanned on that engine's int8 / Hamming top-k when it has
   * them (same hits as the JavaScript scan, scores to float32 rounding).
   */
  static open(file: string, options: { verify?: boolean; gemm?: Gemm | undefined } = {}): ChunkedIndex {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw unreadable(file, e);
    }
    try {
      const fileSize = fs.fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(fileSize, FIXED_HEADER));
      readFully(fd, head, 0, file);
      const layout = parseLayout(file, head, fileSize);
      if (layout.version < 2) {
        throw corrupt(
          file,
          `has format version ${layout.version}, which has no per-row checksums and cannot be opened in chunks`,
          'open it with openIndex and save it again with saveIndex (version 2)',
        );
      }
      const header = Buffer.alloc(layout.vectorsOffset);
      readFully(fd, header, 0, file);
      const vectorsEnd = layout.vectorsOffset + layout.size * layout.dim * 4;
      const tail = new Uint8Array(fileSize - vectorsEnd);
      readFully(fd, tail, vectorsEnd, file);
      const body = tail.subarray(0, tail.length - 4);
      const stored = new DataView(tail.buffer).getUint32(tail.length - 4, true);
      checkCrc(file, stored, crc32(body, crc32(header)));
      const index = new ChunkedIndex(file, fd, layout, header, body, options.gemm);
      if (options.verify === true) index.verify();
      return index;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Streams every row through its checksum; throws naming the first bad row. */
  verify(): void {
    const rowBytes = 4 * this.dim;
    const per = Math.max(1, Math.floor(MAX_READ_BYTES / rowBytes));
    const buf = new Uint8Array(per * rowBytes);
    for (let r0 = 0; r0 < this.size; r0 += per) {
      const count = Math.min(per, this.size - r0);
      const view = buf.subarray(0, count * rowBytes);
      readFully(this.openFd(), view, this.layout.vectorsOffset + r0 * rowBytes, this.file);
      for (let i = 0; i < count; i++) {
        const row = r0 + i;
        checkCrc(this.file, this.rowCrcs[row] as number, crc32(view.subarray(i * rowBytes, (i + 1) * rowBytes)), row);
      }
    }
  }

  /**
   * The float32 rows `rows` (in the given order), `[rows.length, d]`, read from disk and each
   * checked against its stored CRC-32.
   */
  readRows(rows: ArrayLike<number>): Float32Array {
    const d = this.dim;
    const rowBytes = 4 * d;
    const out = new Float32Array(rows.length * d);
    const bytes = new Uint8Array(out.buffer);
    const order = Array.from({ length: rows.length }, (_, i) => i);
    for (const i of order) assertIntInRange(`rows[${i}]`, rows[i] as number, 0, this.size - 1);
    order.sort((a, b) => (rows[a] as number) - (rows[b] as number) || a - b);
    // Runs of consecutive rows that also sit consecutively in `out` go in one read.
    let s = 0;
    while (s < order.length) {
      let e = s + 1;
      while (
        e < order.length &&
        rows[order[e] as number] === (rows[order[e - 1] as number] as number) + 1 &&
        order[e] === (order[e - 1] as number) + 1 &&
        (e - s + 1) * rowBytes <= MAX_READ_BYTES
      ) {
        e++;
      }
      const first = rows[order[s] as number] as number;
      const dst = (order[s] as number) * rowBytes;
      readFully(
        this.openFd(),
        bytes.subarray(dst, dst + (e - s) * rowBytes),
        this.layout.vectorsOffset + first * rowBytes,
        this.file,
      );
      for (let t = s; t < e; t++) {
        const o = (order[t] as number) * rowBytes;
        const row = rows[order[t] as number] as number;
        checkCrc(this.file, this.rowCrcs[row] as number, crc32(bytes.subarray(o, o + rowBytes)), row);
      }
      s = e;
    }
    this.rowsRead += rows.length;
    return out;
  }

  /**
   * Exact re-rank of given candidates (as `MatryoshkaIndex.rerank`, same scores and order),
   * reading only the candidate rows: -1 marks an empty slot, duplicates are scored once.
   */
  rerank(
    queries: Float32Array,
    candidates: Int32Array,
    perQuery: number,
    options: { readonly k: number; readonly dim?: number; readonly metric?: Metric },
  ): SearchResult {
    assertIntInRange('candidates per query', perQuery, 1);
    assertIntInRange('k', options.k, 1);
    if (!(queries instanceof Float32Array)) {
      throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
    }
    const d = this.dim;
    const nq = rowCount('queries', queries, d);
    assertFiniteRows('queries', queries, d);
    if (candidates.length !== nq * perQuery) {
      throw new MrlError(
        'invalid-argument',
        `candidates has ${candidates.length} ids for ${nq} queries x ${perQuery} per query.`,
        'Pass one row of candidate ids per query.',
      );
    }
    const k = Math.min(options.k, this.size);
    const ids = new Int32Array(nq * k);
    const scores = new Float32Array(nq * k);
    let flops = 0;
    let oneOffFlops = 0;
    const m = options.dim ?? d;
    for (let q0 = 0; q0 < nq; q0 += RERANK_QUERY_BATCH) {
      const q1 = Math.min(nq, q0 + RERANK_QUERY_BATCH);
      const slots = candidates.subarray(q0 * perQuery, q1 * perQuery);
      const unique = [...new Set(slots)].filter((id) => id !== -1).sort((a, b) => a - b);
      for (let c = 0; c < slots.length; c++) {
        const id = slots[c] as number;
        if (id !== -1 && !(id >= 0 && id < this.size)) {
          throw new MrlError(
            'invalid-argument',
            `candidates[${q0 * perQuery + c}] = ${id} is not a row of this index (0..${this.size - 1}).`,
          );
        }
      }
      const local = new Map(unique.map((id, i) => [id, i]));
      const localSlots = Int32Array.from(slots, (id) => (id === -1 ? -1 : (local.get(id) as number)));
      const part = MatryoshkaIndex.fromVectors(this.readRows(unique), {
        dim: d,
        metric: this.metric,
        prefixDims: [m],
      });
      // Sorted unique ids keep the tie order (lower row first) of the whole index.
      const r = part.rerank(queries.subarray(q0 * d, q1 * d), localSlots, perQuery, { ...options, k });
      for (let i = 0; i < r.ids.length; i++) {
        const li = r.ids[i] as number;
        ids[q0 * k + i] = li === -1 ? -1 : (unique[li] as number);
        scores[q0 * k + i] = r.scores[i] as number;
      }
      flops += r.flops;
      oneOffFlops += r.oneOffFlops;
    }
    return {
      numQueries: nq,
      k,
      ids,
      scores,
      flops,
      flopsPerQuery: flops / nq,
      oneOffFlops,
      stages: [{ dim: m, kind: 'float', candidatesPerQuery: perQuery, kept: k, flopsPerQuery: flops / nq }],
    };
  }

  /**
   * Two-stage search: the stored quantised first stage scanned in memory keeps `shortlistK`
   * rows per query, which are read from disk and re-ranked exactly at the full dim. Returns
   * what `MatryoshkaIndex.shortlistRerank` returns with the same first stage.
   */
  search(queries: Float32Array, options: ChunkedSearchOptions): SearchResult {
    const first = this.firstStage;
    if (first === undefined) {
      throw new MrlError(
        'invalid-argument',
        `index file ${this.file} has no stored first stage to shortlist with`,
        "save it with saveIndex(index, file, { firstStage: { kind: 'int8', dim: 64 } })",
      );
    }
    assertIntInRange('k', options.k, 1);
    assertIntInRange('shortlistK', options.shortlistK, options.k);
    if (!(queries instanceof Float32Array)) {
      throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
    }
    const d = this.dim;
    const nq = rowCount('queries', queries, d);
    assertFiniteRows('queries', queries, d);
    const rowScale = this.metric === 'cosine' && first.kind === 'int8' ? this.invNorms : undefined;
    const keep = Math.min(options.shortlistK, this.size);
    const heaps = quantizedTopK(first, { data: queries, rows: nq, stride: d }, keep, rowScale, this.gemm);
    const candidates = new Int32Array(nq * keep);
    const unused = new Float32Array(nq * keep);
    heaps.forEach((h, q) => h.drainInto(candidates, unused, q * keep));
    const r = this.rerank(queries, candidates, keep, { k: options.k });
    const firstFlops = quantizedOpsPerQuery(first) + this.size * (quantizedOpsPerRow(first) + (rowScale ? 1 : 0));
    const flops = r.flops + nq * firstFlops;
    return {
      ...r,
      flops,
      flopsPerQuery: flops / nq,
      stages: [
        { dim: first.dim, kind: first.kind, candidatesPerQuery: this.size, kept: keep, flopsPerQuery: firstFlops },
        ...r.stages,
      ],
    };
  }

  /** Closes the file; later reads throw. */
  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new MrlError('invalid-argument', `index file ${this.file} was closed`);
    return this.fd;
  }
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < into.length) {
    const got = fs.readSync(fd, into, off, into.length - off, position + off);
    if (got === 0)
      throw corrupt(
        file,
        `ended at byte ${position + off} while ${into.length - off} more were expected (truncated while open?)`,
      );
    off += got;
  }
}

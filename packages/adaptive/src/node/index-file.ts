/*
 * One-file persistence for a MatryoshkaIndex, in a format of our own.
 *
 * Why our own format and not SQLite with a vector extension (sqlite-vec, sqlite-vss)?
 *  - The index is one dense [N, d] float32 matrix plus a little metadata. A flat file holds it
 *    as one contiguous little-endian block that is read back with a single copy into the
 *    Float32Array the search kernels scan; prefixes stay views into it. SQLite would store
 *    rows as BLOBs in B-tree pages, and rebuilding the contiguous matrix means N row reads.
 *  - No native dependency: SQLite in Node means better-sqlite3 (a node-gyp build) or Node 22's
 *    experimental node:sqlite, plus a loadable extension per platform. This package is pure
 *    TypeScript and runs anywhere Node 20 does.
 *  - The vector extensions search at one fixed dim; adaptive prefixes, funnels and quantised
 *    first stages are ours anyway, so the database would only be a container.
 *  What we give up: concurrent writers, incremental inserts, SQL queries over metadata. An
 *  index is built in one go and saved whole; that is how it is used here.
 *
 * Layout (version 2, all integers little-endian):
 *   off  size  field
 *     0     8  magic  0x89 'M' 'R' 'L' 'I' 'D' 'X' 0x0A  (high bit and newline catch text-mode mangling)
 *     8     4  u32 version = 2
 *    12     4  u32 flags: bit 0 = a labels section; bit 1 = a first-stage section; other bits 0
 *    16     4  u32 dtype: 1 = float32
 *    20     4  u32 d (dim)
 *    24     8  u64 N (rows)
 *    32     4  u32 L = byte length of the metadata JSON
 *    36     4  reserved, 0
 *    40     L  metadata JSON, UTF-8: { metric, prefixDims, ids?, metadata, firstStage? }
 *     P        zero padding to P = 40 + L rounded up to a multiple of 8
 *     P  4N*d  vectors, float32, row-major
 *        4N    labels, int32 (flag bit 0)
 *              first stage (flag bit 1; firstStage = { kind, dim: m, scaleMode? } in the JSON):
 *                int8:   N*m int8 codes, zero padding to 4, scales float32 (m per-dim or N
 *                        per-vector), N float32 1/||x[:m]|| (the cosine row scales)
 *                binary: N*ceil(m/32) u32 sign words
 *        4N    u32 CRC-32 of each row's 4d vector bytes
 *   end-4  4   u32 CRC-32 of every byte before it except the vectors
 *
 * The per-row checksums are what lets `ChunkedIndex` verify the rows it reads on demand without
 * reading the rest; the trailing checksum covers everything else (header, labels, first stage,
 * row checksums), which a chunked open reads whole. Version 1 (one CRC-32 of every byte, no
 * first stage, no row checksums) is still read by `openIndex`; `ChunkedIndex` asks for a re-save.
 *
 * Reading checks, in order, and each failure names the file: exists ('missing-file'); magic
 * (a foreign file); version (newer or unknown); the size the header promises (truncated or
 * trailing bytes); the checksums (corruption anywhere, header included); then flags, dtype and
 * the metadata JSON ('corrupt-file' for all of these).
 *
 * Writing is atomic: the bytes go to `<file>.tmp-<pid>`, are fsynced, their count is checked
 * against the file's size, and the temp file is renamed over `<file>`, so readers see the old
 * index or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { MrlError } from '@mrl/core/errors';
import type { Gemm } from '../gemm.js';
import type { QuantizedPrefix } from '../quantize.js';
import { MatryoshkaIndex, type Metric, type QuantizeSpec } from '../vector-index.js';
import { crc32 } from './crc32.js';
import { acquireWriterLock } from './lock.js';

/** The 8 bytes every index file starts with. */
export const INDEX_FILE_MAGIC: Uint8Array = Uint8Array.from([0x89, 0x4d, 0x52, 0x4c, 0x49, 0x44, 0x58, 0x0a]);
/** The format version this code writes and the newest it reads (it reads 1 too). */
export const INDEX_FILE_VERSION = 2;

/** Fixed header bytes before the metadata JSON. */
export const FIXED_HEADER = 40;
const CRC_BYTES = 4;
const FLAG_LABELS = 1;
const FLAG_FIRST_STAGE = 2;
const DTYPE_FLOAT32 = 1;

/** The metadata JSON of an index file. */
export interface StoredMetadata {
  metric: Metric;
  prefixDims: number[];
  ids?: string[];
  metadata: Record<string, unknown>;
  /** Version 2: the quantised first stage stored after the labels. */
  firstStage?: QuantizeSpec;
}

/** Where each section of an index file lies, from its fixed header (checked against the file size). */
export interface IndexFileLayout {
  readonly version: number;
  readonly flags: number;
  readonly dim: number;
  readonly size: number;
  readonly jsonLength: number;
  readonly vectorsOffset: number;
  readonly labelsOffset: number | undefined;
  readonly firstStageOffset: number;
  readonly firstStageBytes: number;
  /** Version 2: the per-row CRC-32 table. */
  readonly rowCrcOffset: number | undefined;
  readonly totalBytes: number;
}

function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') {
    throw new MrlError('unsupported', 'index files are little-endian and this machine is big-endian');
  }
}

function bytesOf(a: Float32Array | Int32Array | Int8Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Options of {@link saveIndex}. */
export interface SaveIndexOptions {
  /**
   * A quantised prefix to store with the rows (int8 per-dim scales by default, or binary), so
   * that `ChunkedIndex` can scan it from memory and read only the shortlisted rows from disk.
   */
  readonly firstStage?: QuantizeSpec;
}

/**
 * Writes `index` to `file` atomically (temp file, fsync, size check, rename), holding the
 * file's writer lock (`<file>.lock`) meanwhile: a concurrent writer is refused, not interleaved.
 *
 * @example
 * ```ts
 * saveIndex(index, 'products.mrlidx', { firstStage: { kind: 'int8', dim: 64, scale: 'per-dim' } });
 * const again = openIndex('products.mrlidx');
 * ```
 */
export function saveIndex(index: MatryoshkaIndex, file: string, options: SaveIndexOptions = {}): void {
  const release = acquireWriterLock(file);
  try {
    writeIndexFile(index, file, options.firstStage);
  } finally {
    release();
  }
}

/**
 * Changes the index in `file` under its writer lock: opens it, applies `change` (e.g.
 * `withAdded`, `withRemoved`), and saves the result atomically with the same kind of stored
 * first stage (re-quantised from the changed rows). A second writer meanwhile is refused;
 * readers see the old index until the rename.
 *
 * @example
 * ```ts
 * updateIndex('products.mrlidx', (index) => index.withAdded(newRows, { ids: newIds }));
 * ```
 */
export function updateIndex(
  file: string,
  change: (index: MatryoshkaIndex) => MatryoshkaIndex,
  options: { gemm?: Gemm | undefined } = {},
): MatryoshkaIndex {
  const release = acquireWriterLock(file);
  try {
    const { index, firstStage } = readIndexFile(file, options);
    const next = change(index);
    writeIndexFile(next, file, firstStage);
    return next;
  } finally {
    release();
  }
}

/** The first-stage section's parts, in file order. */
function firstStageParts(index: MatryoshkaIndex, spec: QuantizeSpec): Uint8Array[] {
  const q = index.quantize(spec);
  if (q.kind === 'binary') return [bytesOf(q.bits)];
  const pad = new Uint8Array((4 - (q.codes.length % 4)) % 4);
  return [bytesOf(q.codes), pad, bytesOf(q.scales), bytesOf(index.prefixInverseNorms(spec.dim))];
}

function writeIndexFile(index: MatryoshkaIndex, file: string, firstStage: QuantizeSpec | undefined): void {
  assertLittleEndian();
  const stored: StoredMetadata = {
    metric: index.metric,
    prefixDims: [...index.prefixDims],
    metadata: { ...index.metadata },
  };
  if (index.ids !== undefined) stored.ids = [...index.ids];
  const spec: QuantizeSpec | undefined =
    firstStage === undefined
      ? undefined
      : firstStage.kind === 'int8'
        ? { kind: 'int8', dim: firstStage.dim, scale: firstStage.scale ?? 'per-dim' }
        : { kind: 'binary', dim: firstStage.dim };
  const first = spec === undefined ? [] : firstStageParts(index, spec);
  if (spec !== undefined) stored.firstStage = spec;
  const firstBytes = first.reduce((s, p) => s + p.length, 0);
  const json = Buffer.from(JSON.stringify(stored), 'utf8');
  const payloadOffset = Math.ceil((FIXED_HEADER + json.length) / 8) * 8;
  const header = Buffer.alloc(payloadOffset);
  Buffer.from(INDEX_FILE_MAGIC).copy(header, 0);
  header.writeUInt32LE(INDEX_FILE_VERSION, 8);
  header.writeUInt32LE(
    (index.labels !== undefined ? FLAG_LABELS : 0) | (spec !== undefined ? FLAG_FIRST_STAGE : 0),
    12,
  );
  header.writeUInt32LE(DTYPE_FLOAT32, 16);
  header.writeUInt32LE(index.dim, 20);
  header.writeBigUInt64LE(BigInt(index.size), 24);
  header.writeUInt32LE(json.length, 32);
  header.writeUInt32LE(firstBytes, 36);
  json.copy(header, FIXED_HEADER);

  const vectors = bytesOf(index.vectors);
  const rowBytes = 4 * index.dim;
  const rowCrcs = new Uint32Array(index.size);
  for (let i = 0; i < index.size; i++) rowCrcs[i] = crc32(vectors.subarray(i * rowBytes, (i + 1) * rowBytes));
  const rest: Uint8Array[] = [header];
  const after: Uint8Array[] = [];
  if (index.labels !== undefined) after.push(bytesOf(index.labels));
  after.push(...first, bytesOf(rowCrcs));
  let crc = 0;
  for (const p of [...rest, ...after]) crc = crc32(p, crc);
  const trailer = Buffer.alloc(CRC_BYTES);
  trailer.writeUInt32LE(crc, 0);
  writeAtomically(file, [header, vectors, ...after, trailer]);
}

/** temp file, every byte written, fsync, size check, rename; nothing left behind on failure. */
function writeAtomically(file: string, parts: readonly Uint8Array[]): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const expected = parts.reduce((s, p) => s + p.length, 0);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    for (const p of parts) {
      let off = 0;
      while (off < p.length) off += fs.writeSync(fd, p, off, p.length - off);
    }
    fs.fsyncSync(fd);
    const written = fs.fstatSync(fd).size;
    if (written !== expected) throw new Error(`wrote ${written} bytes, expected ${expected}`);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new MrlError(
        'missing-file',
        `cannot write index file ${file}: its directory does not exist`,
        'create the directory first',
        { cause: e },
      );
    }
    throw new MrlError('invalid-argument', `cannot write index file ${file}: ${(e as Error).message}`, undefined, {
      cause: e,
    });
  }
}

/** The `corrupt-file` error of an index file, naming it. */
export function corrupt(file: string, what: string, fix?: string): MrlError {
  return new MrlError('corrupt-file', `index file ${file} ${what}`, fix ?? 'rebuild the index and save it again');
}

/** The error for a file that cannot be opened or read. */
export function unreadable(file: string, e: unknown): MrlError {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
    return new MrlError(
      'missing-file',
      `index file ${file} does not exist`,
      'check the path, or build and save the index first',
      {
        cause: e,
      },
    );
  }
  return new MrlError('invalid-argument', `cannot read index file ${file}: ${(e as Error).message}`, undefined, {
    cause: e,
  });
}

/**
 * Checks magic, version and the size the fixed header promises against `fileSize`, and returns
 * where each section lies. `head` holds the first min(fileSize, 40) bytes.
 */
export function parseLayout(file: string, head: Buffer, fileSize: number): IndexFileLayout {
  assertLittleEndian();
  const magic = Buffer.from(INDEX_FILE_MAGIC);
  const start = head.subarray(0, magic.length);
  if (fileSize === 0) throw corrupt(file, 'is empty (0 bytes)');
  // A short file that starts like ours is truncated (caught below); anything else is foreign.
  if (!magic.subarray(0, start.length).equals(start)) {
    throw corrupt(
      file,
      `is not an mrl index file (bad magic bytes ${start.toString('hex')}, expected ${magic.toString('hex')})`,
      'pass a file written by saveIndex',
    );
  }
  if (fileSize < FIXED_HEADER + CRC_BYTES) {
    throw corrupt(file, `is truncated: ${fileSize} bytes, shorter than the ${FIXED_HEADER + CRC_BYTES}-byte minimum`);
  }
  const version = head.readUInt32LE(8);
  if (version > INDEX_FILE_VERSION) {
    throw corrupt(
      file,
      `has format version ${version}, newer than this reader supports (${INDEX_FILE_VERSION})`,
      'upgrade @mrl/adaptive to read it',
    );
  }
  if (version < 1) throw corrupt(file, `has unsupported format version ${version}`);
  const flags = head.readUInt32LE(12);
  const dim = head.readUInt32LE(20);
  const nBig = head.readBigUInt64LE(24);
  const jsonLength = head.readUInt32LE(32);
  const firstStageBytes = version >= 2 ? head.readUInt32LE(36) : 0;
  const payloadOffset = Math.ceil((FIXED_HEADER + jsonLength) / 8) * 8;
  const hasLabels = (flags & FLAG_LABELS) !== 0;
  const rowCrcBytes = version >= 2 ? nBig * 4n : 0n;
  const expectedBig =
    BigInt(payloadOffset) +
    nBig * BigInt(dim) * 4n +
    (hasLabels ? nBig * 4n : 0n) +
    BigInt(firstStageBytes) +
    rowCrcBytes +
    BigInt(CRC_BYTES);
  const actual = BigInt(fileSize);
  if (actual < expectedBig) {
    throw corrupt(
      file,
      `is truncated: its header promises ${expectedBig} bytes (N=${nBig}, d=${dim}) but it has ${actual}`,
    );
  }
  if (actual > expectedBig) {
    throw corrupt(
      file,
      `has ${actual - expectedBig} unexpected trailing bytes after the ${expectedBig} its header promises`,
    );
  }
  const n = Number(nBig);
  const labelsOffset = payloadOffset + n * dim * 4;
  const firstStageOffset = labelsOffset + (hasLabels ? 4 * n : 0);
  return {
    version,
    flags,
    dim,
    size: n,
    jsonLength,
    vectorsOffset: payloadOffset,
    labelsOffset: hasLabels ? labelsOffset : undefined,
    firstStageOffset,
    firstStageBytes,
    rowCrcOffset: version >= 2 ? firstStageOffset + firstStageBytes : undefined,
    totalBytes: fileSize,
  };
}

function checksumError(file: string, stored: number, computed: number, where = ''): MrlError {
  const hex = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;
  return corrupt(
    file,
    `failed its checksum${where} (stored CRC-32 ${hex(stored)}, computed ${hex(computed)}): the file is corrupted`,
  );
}

/** Compares a computed CRC with the stored one; the message names the row when there is one. */
export function checkCrc(file: string, stored: number, computed: number, row?: number): void {
  if (stored !== computed) throw checksumError(file, stored, computed, row === undefined ? '' : ` at row ${row}`);
}

/**
 * Checks flags, dtype and the metadata JSON (after the checksum that covers them), and the
 * stored first stage's size against its description.
 */
export function parseMetadata(file: string, layout: IndexFileLayout, header: Buffer): StoredMetadata {
  const known = FLAG_LABELS | (layout.version >= 2 ? FLAG_FIRST_STAGE : 0);
  if ((layout.flags & ~known) !== 0) throw corrupt(file, `has unknown flag bits 0x${layout.flags.toString(16)}`);
  const dtype = header.readUInt32LE(16);
  if (dtype !== DTYPE_FLOAT32) throw corrupt(file, `has unsupported dtype code ${dtype} (only 1 = float32 is known)`);
  if (layout.dim < 1) throw corrupt(file, 'has dim 0 in its header');
  if (layout.size < 1) throw corrupt(file, 'holds no vectors (N=0)');
  let meta: StoredMetadata;
  try {
    meta = JSON.parse(header.toString('utf8', FIXED_HEADER, FIXED_HEADER + layout.jsonLength)) as StoredMetadata;
  } catch (e) {
    throw corrupt(file, `has unreadable metadata JSON: ${(e as Error).message}`);
  }
  if (
    typeof meta !== 'object' ||
    meta === null ||
    (meta.metric !== 'dot' && meta.metric !== 'cosine') ||
    !Array.isArray(meta.prefixDims)
  ) {
    throw corrupt(file, 'has metadata without a valid metric and prefixDims');
  }
  if (meta.ids !== undefined && (!Array.isArray(meta.ids) || meta.ids.length !== layout.size)) {
    throw corrupt(file, `has an ids list that does not hold one id per vector (N=${layout.size})`);
  }
  const hasFirst = (layout.flags & FLAG_FIRST_STAGE) !== 0;
  if (hasFirst !== (meta.firstStage !== undefined)) {
    throw corrupt(file, 'has a first-stage flag that disagrees with its metadata');
  }
  if (meta.firstStage !== undefined) {
    const want = firstStageByteLength(meta.firstStage, layout.size, layout.dim);
    if (want !== layout.firstStageBytes) {
      throw corrupt(
        file,
        `has a first stage of ${layout.firstStageBytes} bytes where ${JSON.stringify(meta.firstStage)} needs ${want}`,
      );
    }
  }
  return meta;
}

function firstStageByteLength(spec: QuantizeSpec, n: number, d: number): number {
  if (!Number.isInteger(spec.dim) || spec.dim < 1 || spec.dim > d) return Number.NaN;
  if (spec.kind === 'binary') return n * Math.ceil(spec.dim / 32) * 4;
  if (spec.kind !== 'int8') return Number.NaN;
  const codes = Math.ceil((n * spec.dim) / 4) * 4;
  const scales = spec.scale === 'per-vector' ? n : spec.dim;
  return codes + 4 * scales + 4 * n;
}

/**
 * The stored first stage as a {@link QuantizedPrefix} (views into `section`, which must be
 * 4-byte aligned), and for int8 the cosine row scales 1/||x[:m]||.
 */
export function parseFirstStage(
  spec: QuantizeSpec,
  section: Uint8Array,
  n: number,
): { prefix: QuantizedPrefix; invNorms: Float32Array | undefined } {
  const m = spec.dim;
  if (spec.kind === 'binary') {
    const words = Math.ceil(m / 32);
    return {
      prefix: {
        kind: 'binary',
        dim: m,
        size: n,
        wordsPerVector: words,
        bits: new Uint32Array(section.buffer, section.byteOffset, n * words),
      },
      invNorms: undefined,
    };
  }
  const codesBytes = Math.ceil((n * m) / 4) * 4;
  const scaleMode = spec.scale ?? 'per-dim';
  const nScales = scaleMode === 'per-vector' ? n : m;
  return {
    prefix: {
      kind: 'int8',
      dim: m,
      size: n,
      scaleMode,
      codes: new Int8Array(section.buffer, section.byteOffset, n * m),
      scales: new Float32Array(section.buffer, section.byteOffset + codesBytes, nScales),
    },
    invNorms: new Float32Array(section.buffer, section.byteOffset + codesBytes + 4 * nScales, n),
  };
}

/**
 * Reads an index written by {@link saveIndex} whole, verifying magic, version, size and
 * checksums (version 2: every row's and the rest's; version 1: the file's).
 * `options.gemm` is passed on to the index (e.g. `nativeGemm()` for fast full scans).
 *
 * @example
 * ```ts
 * const index = openIndex('products.mrlidx');
 * index.search(queries, { k: 10, dim: 64 });
 * ```
 */
export function openIndex(file: string, options: { gemm?: Gemm | undefined } = {}): MatryoshkaIndex {
  return readIndexFile(file, options).index;
}

function readIndexFile(
  file: string,
  options: { gemm?: Gemm | undefined },
): { index: MatryoshkaIndex; firstStage: QuantizeSpec | undefined } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw unreadable(file, e);
  }
  const layout = parseLayout(file, buf.subarray(0, FIXED_HEADER), buf.length);
  const n = layout.size;
  const dim = layout.dim;
  const stored = buf.readUInt32LE(buf.length - CRC_BYTES);
  if (layout.version === 1) {
    checkCrc(file, stored, crc32(buf.subarray(0, buf.length - CRC_BYTES)));
  } else {
    const vectorsEnd = layout.vectorsOffset + n * dim * 4;
    let crc = crc32(buf.subarray(0, layout.vectorsOffset));
    crc = crc32(buf.subarray(vectorsEnd, buf.length - CRC_BYTES), crc);
    checkCrc(file, stored, crc);
    const table = buf.subarray(layout.rowCrcOffset as number, buf.length - CRC_BYTES);
    const rowBytes = 4 * dim;
    for (let i = 0; i < n; i++) {
      const at = layout.vectorsOffset + i * rowBytes;
      checkCrc(file, table.readUInt32LE(4 * i), crc32(buf.subarray(at, at + rowBytes)), i);
    }
  }
  const meta = parseMetadata(file, layout, buf);

  const vectors = new Float32Array(n * dim);
  new Uint8Array(vectors.buffer).set(buf.subarray(layout.vectorsOffset, layout.vectorsOffset + vectors.byteLength));
  let labels: Int32Array | undefined;
  if (layout.labelsOffset !== undefined) {
    labels = new Int32Array(n);
    new Uint8Array(labels.buffer).set(buf.subarray(layout.labelsOffset, layout.labelsOffset + labels.byteLength));
  }
  try {
    const index = MatryoshkaIndex.fromVectors(vectors, {
      dim,
      metric: meta.metric,
      prefixDims: meta.prefixDims,
      metadata: meta.metadata ?? {},
      ...(meta.ids !== undefined ? { ids: meta.ids } : {}),
      ...(labels !== undefined ? { labels } : {}),
      ...(options.gemm !== undefined ? { gemm: options.gemm } : {}),
    });
    return { index, firstStage: meta.firstStage };
  } catch (e) {
    throw corrupt(file, `has an inconsistent header: ${(e as Error).message}`);
  }
}

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
 * Layout (version 1, all integers little-endian):
 *   off  size  field
 *     0     8  magic  0x89 'M' 'R' 'L' 'I' 'D' 'X' 0x0A  (high bit and newline catch text-mode mangling)
 *     8     4  u32 version = 1
 *    12     4  u32 flags: bit 0 = a labels section follows the vectors; other bits must be 0
 *    16     4  u32 dtype: 1 = float32
 *    20     4  u32 d (dim)
 *    24     8  u64 N (rows)
 *    32     4  u32 L = byte length of the metadata JSON
 *    36     4  reserved, 0
 *    40     L  metadata JSON, UTF-8: { metric, prefixDims, ids?, metadata }
 *     P        zero padding to P = 40 + L rounded up to a multiple of 8
 *     P  4N*d  vectors, float32, row-major
 *        4N    labels, int32 (only with flag bit 0)
 *   end-4  4   u32 CRC-32 of every byte before it
 *
 * Reading checks, in order, and each failure names the file: exists ('missing-file'); magic
 * (a foreign file); version (newer or unknown); the size the header promises (truncated or
 * trailing bytes); the checksum (corruption anywhere, header included); then flags, dtype and
 * the metadata JSON ('corrupt-file' for all of these).
 *
 * Writing is atomic: the bytes go to `<file>.tmp-<pid>`, are fsynced, and the temp file is
 * renamed over `<file>`, so readers see the old index or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { MrlError } from '@mrl/core/errors';
import type { Gemm } from '../gemm.js';
import { MatryoshkaIndex, type Metric } from '../vector-index.js';
import { crc32 } from './crc32.js';
import { acquireWriterLock } from './lock.js';

/** The 8 bytes every index file starts with. */
export const INDEX_FILE_MAGIC: Uint8Array = Uint8Array.from([0x89, 0x4d, 0x52, 0x4c, 0x49, 0x44, 0x58, 0x0a]);
/** The format version this code writes and the newest it reads. */
export const INDEX_FILE_VERSION = 1;

const FIXED_HEADER = 40;
const CRC_BYTES = 4;
const FLAG_LABELS = 1;
const DTYPE_FLOAT32 = 1;

interface StoredMetadata {
  metric: Metric;
  prefixDims: number[];
  ids?: string[];
  metadata: Record<string, unknown>;
}

function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') {
    throw new MrlError('unsupported', 'index files are little-endian and this machine is big-endian');
  }
}

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes `index` to `file` atomically (temp file, fsync, rename), holding the file's writer
 * lock (`<file>.lock`) meanwhile: a concurrent writer is refused, not interleaved.
 *
 * @example
 * ```ts
 * saveIndex(index, 'products.mrlidx');
 * const again = openIndex('products.mrlidx');
 * ```
 */
export function saveIndex(index: MatryoshkaIndex, file: string): void {
  const release = acquireWriterLock(file);
  try {
    writeIndexFile(index, file);
  } finally {
    release();
  }
}

/**
 * Changes the index in `file` under its writer lock: opens it, applies `change` (e.g.
 * `withAdded`, `withRemoved`), and saves the result atomically. A second writer meanwhile is
 * refused; readers see the old index until the rename.
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
    const next = change(openIndex(file, options));
    writeIndexFile(next, file);
    return next;
  } finally {
    release();
  }
}

function writeIndexFile(index: MatryoshkaIndex, file: string): void {
  assertLittleEndian();
  const stored: StoredMetadata = {
    metric: index.metric,
    prefixDims: [...index.prefixDims],
    metadata: { ...index.metadata },
  };
  if (index.ids !== undefined) stored.ids = [...index.ids];
  const json = Buffer.from(JSON.stringify(stored), 'utf8');
  const payloadOffset = Math.ceil((FIXED_HEADER + json.length) / 8) * 8;
  const header = Buffer.alloc(payloadOffset);
  Buffer.from(INDEX_FILE_MAGIC).copy(header, 0);
  header.writeUInt32LE(INDEX_FILE_VERSION, 8);
  header.writeUInt32LE(index.labels !== undefined ? FLAG_LABELS : 0, 12);
  header.writeUInt32LE(DTYPE_FLOAT32, 16);
  header.writeUInt32LE(index.dim, 20);
  header.writeBigUInt64LE(BigInt(index.size), 24);
  header.writeUInt32LE(json.length, 32);
  json.copy(header, FIXED_HEADER);

  const parts: Uint8Array[] = [header, bytesOf(index.vectors)];
  if (index.labels !== undefined) parts.push(bytesOf(index.labels));
  let crc = 0;
  for (const p of parts) crc = crc32(p, crc);
  const trailer = Buffer.alloc(CRC_BYTES);
  trailer.writeUInt32LE(crc, 0);
  parts.push(trailer);

  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    for (const p of parts) {
      let off = 0;
      while (off < p.length) off += fs.writeSync(fd, p, off, p.length - off);
    }
    fs.fsyncSync(fd);
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

function corrupt(file: string, what: string, fix?: string): MrlError {
  return new MrlError('corrupt-file', `index file ${file} ${what}`, fix ?? 'rebuild the index and save it again');
}

/**
 * Reads an index written by {@link saveIndex}, verifying magic, version, size and checksum.
 * `options.gemm` is passed on to the index (e.g. `nativeGemm()` for fast full scans).
 *
 * @example
 * ```ts
 * const index = openIndex('products.mrlidx');
 * index.search(queries, { k: 10, dim: 64 });
 * ```
 */
export function openIndex(file: string, options: { gemm?: Gemm | undefined } = {}): MatryoshkaIndex {
  assertLittleEndian();
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MrlError(
        'missing-file',
        `index file ${file} does not exist`,
        'check the path, or build and save the index first',
        { cause: e },
      );
    }
    throw new MrlError('invalid-argument', `cannot read index file ${file}: ${(e as Error).message}`, undefined, {
      cause: e,
    });
  }
  const magic = Buffer.from(INDEX_FILE_MAGIC);
  const head = buf.subarray(0, magic.length);
  if (buf.length === 0) throw corrupt(file, 'is empty (0 bytes)');
  // A short file that starts like ours is truncated (caught below); anything else is foreign.
  if (!magic.subarray(0, head.length).equals(head)) {
    throw corrupt(
      file,
      `is not an mrl index file (bad magic bytes ${head.toString('hex')}, expected ${magic.toString('hex')})`,
      'pass a file written by saveIndex',
    );
  }
  if (buf.length < FIXED_HEADER + CRC_BYTES) {
    throw corrupt(file, `is truncated: ${buf.length} bytes, shorter than the ${FIXED_HEADER + CRC_BYTES}-byte minimum`);
  }
  const version = buf.readUInt32LE(8);
  if (version > INDEX_FILE_VERSION) {
    throw corrupt(
      file,
      `has format version ${version}, newer than this reader supports (${INDEX_FILE_VERSION})`,
      'upgrade @mrl/adaptive to read it',
    );
  }
  if (version < 1) throw corrupt(file, `has unsupported format version ${version}`);
  const flags = buf.readUInt32LE(12);
  const dtype = buf.readUInt32LE(16);
  const dim = buf.readUInt32LE(20);
  const nBig = buf.readBigUInt64LE(24);
  const jsonLength = buf.readUInt32LE(32);
  const payloadOffset = Math.ceil((FIXED_HEADER + jsonLength) / 8) * 8;
  const hasLabels = (flags & FLAG_LABELS) !== 0;
  const expectedBig =
    BigInt(payloadOffset) + nBig * BigInt(dim) * 4n + (hasLabels ? nBig * 4n : 0n) + BigInt(CRC_BYTES);
  const actual = BigInt(buf.length);
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
  const body = buf.subarray(0, buf.length - CRC_BYTES);
  const stored = buf.readUInt32LE(buf.length - CRC_BYTES);
  const computed = crc32(body);
  if (stored !== computed) {
    throw corrupt(
      file,
      `failed its checksum (stored CRC-32 0x${stored.toString(16).padStart(8, '0')}, computed 0x${computed.toString(16).padStart(8, '0')}): the file is corrupted`,
    );
  }
  if ((flags & ~FLAG_LABELS) !== 0) throw corrupt(file, `has unknown flag bits 0x${flags.toString(16)}`);
  if (dtype !== DTYPE_FLOAT32) throw corrupt(file, `has unsupported dtype code ${dtype} (only 1 = float32 is known)`);
  if (dim < 1) throw corrupt(file, 'has dim 0 in its header');
  const n = Number(nBig);
  if (n < 1) throw corrupt(file, 'holds no vectors (N=0)');

  let meta: StoredMetadata;
  try {
    meta = JSON.parse(buf.toString('utf8', FIXED_HEADER, FIXED_HEADER + jsonLength)) as StoredMetadata;
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
  if (meta.ids !== undefined && (!Array.isArray(meta.ids) || meta.ids.length !== n)) {
    throw corrupt(file, `has an ids list that does not hold one id per vector (N=${n})`);
  }

  const vectors = new Float32Array(n * dim);
  new Uint8Array(vectors.buffer).set(buf.subarray(payloadOffset, payloadOffset + vectors.byteLength));
  let labels: Int32Array | undefined;
  if (hasLabels) {
    labels = new Int32Array(n);
    const off = payloadOffset + vectors.byteLength;
    new Uint8Array(labels.buffer).set(buf.subarray(off, off + labels.byteLength));
  }
  try {
    return MatryoshkaIndex.fromVectors(vectors, {
      dim,
      metric: meta.metric,
      prefixDims: meta.prefixDims,
      metadata: meta.metadata ?? {},
      ...(meta.ids !== undefined ? { ids: meta.ids } : {}),
      ...(labels !== undefined ? { labels } : {}),
      ...(options.gemm !== undefined ? { gemm: options.gemm } : {}),
    });
  } catch (e) {
    throw corrupt(file, `has an inconsistent header: ${(e as Error).message}`);
  }
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MrlError } from '@mrl/core/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { ChunkedIndex } from '../../src/node/chunked-index.js';
import { crc32 } from '../../src/node/crc32.js';
import { nativeGemm } from '../../src/node/native-gemm.js';
import { INDEX_FILE_MAGIC, openIndex, saveIndex, updateIndex } from '../../src/node/index-file.js';
import type { QuantizeSpec } from '../../src/vector-index.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { clustered } from '../synthetic.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mrl-chunked-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const d = 48;
const n = 1500;
const data = clustered(n, 30, d, 40, 9);
const ids = Array.from({ length: n }, (_, i) => `doc-${i}`);
const build = (metric: 'cosine' | 'dot') =>
  MatryoshkaIndex.fromVectors(data.vectors, { dim: d, metric, ids, labels: data.labels, metadata: { m: 1 } });

function errorOf(fn: () => unknown): MrlError {
  try {
    fn();
  } catch (e) {
    if (MrlError.is(e)) return e;
    throw e;
  }
  throw new Error('expected an MrlError');
}

describe('ChunkedIndex: search reading only the shortlisted rows', () => {
  it.each([
    ['cosine', { kind: 'int8', dim: 16, scale: 'per-dim' }],
    ['dot', { kind: 'int8', dim: 12, scale: 'per-vector' }],
    ['cosine', { kind: 'binary', dim: 40 }],
  ] as const)('%s, %o: equals MatryoshkaIndex.shortlistRerank with the same first stage', (metric, spec) => {
    const index = build(metric);
    const file = path.join(dir, `search-${metric}-${spec.kind}-${spec.dim}.mrlidx`);
    saveIndex(index, file, { firstStage: spec as QuantizeSpec });
    const db = ChunkedIndex.open(file);
    try {
      expect(db.size).toBe(n);
      expect(db.metric).toBe(metric);
      expect(db.ids).toEqual(ids);
      expect(Array.from(db.labels ?? [])).toEqual(Array.from(data.labels));
      expect(db.metadata).toEqual({ m: 1 });
      // The rows stay on disk: memory holds less than a quarter of them.
      expect(db.heapBytes).toBeLessThan((n * d * 4) / 4);
      const K = 40;
      const got = db.search(data.queries, { k: 10, shortlistK: K });
      const want = index.shortlistRerank(data.queries, {
        shortlistDim: spec.dim,
        shortlistK: K,
        rerankDim: d,
        k: 10,
        firstStage: index.quantize(spec as QuantizeSpec),
      });
      expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
      expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
      expect(got.flopsPerQuery).toBeCloseTo(want.flopsPerQuery, 6);
      expect(db.rowsRead).toBeGreaterThan(0);
      expect(db.rowsRead).toBeLessThanOrEqual(30 * K);
      // The first stage scanned on ONNX Runtime shortlists the same rows.
      const native = ChunkedIndex.open(file, { gemm: nativeGemm() });
      try {
        const fast = native.search(data.queries, { k: 10, shortlistK: K });
        expect(Array.from(fast.ids)).toEqual(Array.from(got.ids));
        expect(Array.from(fast.scores)).toEqual(Array.from(got.scores));
      } finally {
        native.close();
      }
    } finally {
      db.close();
    }
  });

  it('readRows returns the rows in the order asked, duplicates and descending runs included', () => {
    const file = path.join(dir, 'rows.mrlidx');
    saveIndex(build('cosine'), file);
    const db = ChunkedIndex.open(file, { verify: true });
    const rows = [7, 3, 4, 5, 5, 1499, 0, 6];
    const got = db.readRows(rows);
    const want = rows.flatMap((r) => Array.from(data.vectors.subarray(r * d, (r + 1) * d)));
    expect(Array.from(got)).toEqual(want);
    db.close();
    expect(() => db.readRows([1])).toThrow(/was closed/);
  });

  it('a flipped byte in a row: open succeeds (rows unread), reading that row or verifying names it', () => {
    const file = path.join(dir, 'flip-row.mrlidx');
    saveIndex(build('cosine'), file, { firstStage: { kind: 'int8', dim: 16 } });
    const buf = fs.readFileSync(file);
    const vectorsOffset = Math.ceil((40 + buf.readUInt32LE(32)) / 8) * 8;
    const at = vectorsOffset + 321 * d * 4 + 5;
    buf[at] = (buf[at] as number) ^ 0x04;
    fs.writeFileSync(file, buf);
    const db = ChunkedIndex.open(file);
    expect(Array.from(db.readRows([320, 322])).length).toBe(2 * d);
    const e = errorOf(() => db.readRows([321]));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toMatch(/flip-row\.mrlidx failed its checksum at row 321 \(stored CRC-32 0x[0-9a-f]{8}/);
    expect(() => db.verify()).toThrow(/at row 321/);
    db.close();
    expect(() => ChunkedIndex.open(file, { verify: true })).toThrow(/at row 321/);
    expect(() => openIndex(file)).toThrow(/at row 321/);
  });

  it('a flipped byte in the first stage, the labels or the header fails the open', () => {
    const file = path.join(dir, 'flip-first.mrlidx');
    saveIndex(build('cosine'), file, { firstStage: { kind: 'binary', dim: 48 } });
    const clean = fs.readFileSync(file);
    for (const at of [clean.length - 4 * n - 20, 45]) {
      const buf = Buffer.from(clean);
      buf[at] = (buf[at] as number) ^ 0x01;
      fs.writeFileSync(file, buf);
      const e = errorOf(() => ChunkedIndex.open(file));
      expect(e.kind).toBe('corrupt-file');
      expect(e.message).toMatch(/failed its checksum \(stored CRC-32/);
    }
  });

  it('a truncated file is refused at open, naming what the header promises', () => {
    const file = path.join(dir, 'cut.mrlidx');
    saveIndex(build('cosine'), file, { firstStage: { kind: 'int8', dim: 16 } });
    const full = fs.readFileSync(file);
    fs.writeFileSync(file, full.subarray(0, full.length - 1000));
    const e = errorOf(() => ChunkedIndex.open(file));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toMatch(
      /cut\.mrlidx is truncated: its header promises \d+ bytes \(N=1500, d=48\) but it has \d+/,
    );
    expect(errorOf(() => ChunkedIndex.open(path.join(dir, 'absent.mrlidx'))).kind).toBe('missing-file');
  });

  it('bad queries: NaN (row named), a dim mismatch, no stored first stage, shortlistK < k', () => {
    const file = path.join(dir, 'bad.mrlidx');
    saveIndex(build('cosine'), file, { firstStage: { kind: 'int8', dim: 16 } });
    const db = ChunkedIndex.open(file);
    const q = data.queries.slice(0, 3 * d);
    q[2 * d + 7] = Number.NaN;
    expect(() => db.search(q, { k: 5, shortlistK: 20 })).toThrow(/queries row 2 holds NaN at position 7 \(of 48\)/);
    expect(() => db.search(new Float32Array(50), { k: 5, shortlistK: 20 })).toThrow(
      /queries has 50 values, which is not a positive multiple of the row length 48/,
    );
    expect(() => db.search(data.queries, { k: 5, shortlistK: 4 })).toThrow(/shortlistK must be an integer >= 5/);
    db.close();
    const plainFile = path.join(dir, 'plain.mrlidx');
    saveIndex(build('cosine'), plainFile);
    const plain = ChunkedIndex.open(plainFile);
    expect(() => plain.search(data.queries, { k: 5, shortlistK: 20 })).toThrow(/has no stored first stage/);
    plain.close();
  });
});

describe('format versions', () => {
  /** A version-1 file as the previous writer made it: one CRC-32 of all bytes, no row checksums. */
  function writeV1(index: MatryoshkaIndex, file: string): void {
    const json = Buffer.from(JSON.stringify({ metric: index.metric, prefixDims: index.prefixDims, metadata: {} }));
    const payload = Math.ceil((40 + json.length) / 8) * 8;
    const header = Buffer.alloc(payload);
    Buffer.from(INDEX_FILE_MAGIC).copy(header, 0);
    header.writeUInt32LE(1, 8);
    header.writeUInt32LE(1, 16);
    header.writeUInt32LE(index.dim, 20);
    header.writeBigUInt64LE(BigInt(index.size), 24);
    header.writeUInt32LE(json.length, 32);
    json.copy(header, 40);
    const body = Buffer.concat([
      header,
      Buffer.from(index.vectors.buffer, index.vectors.byteOffset, index.vectors.byteLength),
    ]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(body), 0);
    fs.writeFileSync(file, Buffer.concat([body, crc]));
  }

  it('version 1 files still open whole; a chunked open asks for a re-save; updating writes version 2', () => {
    const index = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 200 * d), { dim: d });
    const file = path.join(dir, 'v1.mrlidx');
    writeV1(index, file);
    const back = openIndex(file);
    expect(Array.from(back.vectors)).toEqual(Array.from(index.vectors));
    const e = errorOf(() => ChunkedIndex.open(file));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toMatch(/has format version 1, which has no per-row checksums and cannot be opened in chunks/);
    expect(e.fix).toMatch(/save it again with saveIndex \(version 2\)/);
    updateIndex(file, (x) => x.withRemoved([0]));
    expect(fs.readFileSync(file).readUInt32LE(8)).toBe(2);
    expect(ChunkedIndex.open(file).size).toBe(199);
  });
});

describe('insert, remove, save, reopen with a stored first stage', () => {
  it('updateIndex writes the same bytes as saving a fresh build of the final rows, and re-quantises', () => {
    const spec: QuantizeSpec = { kind: 'int8', dim: 16, scale: 'per-dim' };
    const first = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 1000 * d), {
      dim: d,
      ids: ids.slice(0, 1000),
      labels: data.labels.slice(0, 1000),
    });
    const file = path.join(dir, 'grow.mrlidx');
    saveIndex(first, file, { firstStage: spec });
    updateIndex(file, (x) =>
      x.withAdded(data.vectors.slice(1000 * d), { ids: ids.slice(1000), labels: data.labels.slice(1000) }),
    );
    updateIndex(file, (x) => x.withRemoved([3, 1200, 1499]));
    const keep = Array.from({ length: n }, (_, i) => i).filter((i) => i !== 3 && i !== 1200 && i !== 1499);
    const fresh = MatryoshkaIndex.fromVectors(
      Float32Array.from(keep.flatMap((i) => Array.from(data.vectors.subarray(i * d, (i + 1) * d)))),
      { dim: d, ids: keep.map((i) => ids[i] as string), labels: keep.map((i) => data.labels[i] as number) },
    );
    const freshFile = path.join(dir, 'fresh.mrlidx');
    saveIndex(fresh, freshFile, { firstStage: spec });
    expect(fs.readFileSync(file).equals(fs.readFileSync(freshFile))).toBe(true);
    const db = ChunkedIndex.open(file, { verify: true });
    const got = db.search(data.queries, { k: 10, shortlistK: 50 });
    const want = fresh.shortlistRerank(data.queries, {
      shortlistDim: 16,
      shortlistK: 50,
      rerankDim: d,
      k: 10,
      firstStage: fresh.quantize(spec),
    });
    expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
    db.close();
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('grow'))).toEqual(['grow.mrlidx']); // no lock or temp left
  });
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32Portable } from '../../src/crc32.js';
import { crc32 } from '../../src/node/crc32.js';
import { INDEX_FILE_MAGIC, openIndex, saveIndex } from '../../src/node/index-file.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { MrlError } from '@mrl/core/errors';
import { clustered } from '../synthetic.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mrl-index-file-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const d = 32;
const data = clustered(257, 5, d, 7, 2);
const ids = Array.from({ length: 257 }, (_, i) => `doc-${i}`);
const index = MatryoshkaIndex.fromVectors(data.vectors, {
  dim: d,
  metric: 'dot',
  prefixDims: [8, 32],
  ids,
  labels: data.labels,
  metadata: { model: 'synthetic', note: 'ünïcode' },
});

function saved(name: string): string {
  const file = path.join(dir, name);
  saveIndex(index, file);
  return file;
}

function openError(file: string): MrlError {
  try {
    openIndex(file);
  } catch (e) {
    if (MrlError.is(e)) return e;
    throw e;
  }
  throw new Error('expected openIndex to throw');
}

describe('crc32', () => {
  it('matches the standard check value, natively and portably, and chains', () => {
    const bytes = new TextEncoder().encode('123456789');
    expect(crc32(bytes)).toBe(0xcbf43926);
    expect(crc32Portable(bytes)).toBe(0xcbf43926);
    expect(crc32Portable(bytes.subarray(4), crc32Portable(bytes.subarray(0, 4)))).toBe(0xcbf43926);
  });
});

describe('saveIndex / openIndex', () => {
  it('round-trips vectors, labels, ids, metric, prefix dims and metadata exactly', () => {
    const back = openIndex(saved('round.mrlidx'));
    expect(back.size).toBe(257);
    expect(back.dim).toBe(d);
    expect(back.metric).toBe('dot');
    expect(back.prefixDims).toEqual([8, 32]);
    expect(Buffer.from(back.vectors.buffer).equals(Buffer.from(data.vectors.buffer))).toBe(true);
    expect(Array.from(back.labels!)).toEqual(Array.from(data.labels));
    expect(back.ids).toEqual(ids);
    expect(back.metadata).toEqual({ model: 'synthetic', note: 'ünïcode' });
    const a = index.search(data.queries, { k: 5 });
    const b = back.search(data.queries, { k: 5 });
    expect(Array.from(b.ids)).toEqual(Array.from(a.ids));
  });

  it('round-trips an index without labels or ids', () => {
    const plain = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 3 * d), { dim: d });
    const file = path.join(dir, 'plain.mrlidx');
    saveIndex(plain, file);
    const back = openIndex(file);
    expect(back.labels).toBeUndefined();
    expect(back.ids).toBeUndefined();
    expect(Array.from(back.vectors)).toEqual(Array.from(plain.vectors));
  });

  it('writes atomically: no temp file is left behind and an existing file is replaced', () => {
    const file = saved('atomic.mrlidx');
    saveIndex(index, file);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('atomic.mrlidx'))).toEqual(['atomic.mrlidx']);
    expect(fs.existsSync(`${file}.tmp-${process.pid}`)).toBe(false);
  });

  it('leaves no temp file when the write fails', () => {
    const file = path.join(dir, 'no-such-dir', 'x.mrlidx');
    expect(() => saveIndex(index, file)).toThrow(/cannot write index file .*x\.mrlidx: its directory does not exist/);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  it('truncated file', () => {
    const file = saved('truncated.mrlidx');
    const full = fs.readFileSync(file);
    fs.writeFileSync(file, full.subarray(0, full.length - 100));
    const e = openError(file);
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toContain(file);
    expect(e.message).toMatch(/is truncated: its header promises \d+ bytes \(N=257, d=32\) but it has \d+/);
  });

  it('file cut inside the header', () => {
    const file = saved('stub.mrlidx');
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 20));
    expect(openError(file).message).toMatch(/is truncated: 20 bytes, shorter than the 44-byte minimum/);
  });

  it('flipped byte', () => {
    const file = saved('flipped.mrlidx');
    const buf = fs.readFileSync(file);
    buf[buf.length - 500] = (buf[buf.length - 500] as number) ^ 0x10;
    fs.writeFileSync(file, buf);
    const e = openError(file);
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toContain(file);
    expect(e.message).toMatch(
      /failed its checksum \(stored CRC-32 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is corrupted/,
    );
  });

  it('bad magic (a foreign file)', () => {
    const file = path.join(dir, 'foreign.npy');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('\x93NUMPY', 'latin1'), Buffer.alloc(200)]));
    const e = openError(file);
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toContain(file);
    expect(e.message).toMatch(
      /is not an mrl index file \(bad magic bytes 934e554d50590000, expected 894d524c4944580a\)/,
    );
  });

  it('future version', () => {
    const file = saved('future.mrlidx');
    const buf = fs.readFileSync(file);
    buf.writeUInt32LE(3, INDEX_FILE_MAGIC.length);
    fs.writeFileSync(file, buf);
    const e = openError(file);
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toContain(file);
    expect(e.message).toMatch(/has format version 3, newer than this reader supports \(2\)/);
    expect(e.fix).toMatch(/upgrade/);
  });

  it('trailing bytes', () => {
    const file = saved('trailing.mrlidx');
    fs.appendFileSync(file, Buffer.alloc(3));
    expect(openError(file).message).toMatch(/has 3 unexpected trailing bytes/);
  });

  it('empty file', () => {
    const file = path.join(dir, 'empty.mrlidx');
    fs.writeFileSync(file, '');
    expect(openError(file).message).toMatch(/is empty \(0 bytes\)/);
  });

  it('missing file', () => {
    const e = openError(path.join(dir, 'absent.mrlidx'));
    expect(e.kind).toBe('missing-file');
    expect(e.message).toMatch(/absent\.mrlidx does not exist/);
  });
});

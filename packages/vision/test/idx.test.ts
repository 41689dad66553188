import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MrlError } from '@mrl/core';
import { describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../src/fashion-mnist.js';
import { parseIdx, readIdx } from '../src/idx.js';
import { FASHION_MNIST_DIR } from './helpers.js';

function idxBytes(shape: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  out[2] = 0x08;
  out[3] = shape.length;
  const view = new DataView(out.buffer);
  shape.forEach((s, i) => view.setUint32(4 + 4 * i, s, false));
  out.set(data, 4 + 4 * shape.length);
  return out;
}

describe('IDX files', () => {
  it('parses plain and gzip bytes alike', () => {
    const raw = idxBytes([2, 3], [1, 2, 3, 4, 5, 6]);
    for (const bytes of [raw, new Uint8Array(gzipSync(raw))]) {
      const parsed = parseIdx(bytes);
      expect(parsed.shape).toEqual([2, 3]);
      expect([...parsed.data]).toEqual([1, 2, 3, 4, 5, 6]);
    }
  });

  it('rejects a bad magic number, element type and length, naming the source', () => {
    const good = idxBytes([2], [1, 2]);
    const badMagic = Uint8Array.from(good);
    badMagic[0] = 7;
    expect(() => parseIdx(badMagic, 'x.idx')).toThrow(/x\.idx is not a valid IDX file: the magic number/);
    const badType = Uint8Array.from(good);
    badType[2] = 0x0d;
    expect(() => parseIdx(badType, 'y.idx')).toThrow(/element type 0xd is not 0x08/);
    expect(() => parseIdx(good.subarray(0, good.length - 1), 'z.idx')).toThrow(
      /the header says \[2\] \(2 values\) but 1 bytes follow/,
    );
    expect(() => parseIdx(good.subarray(0, 6), 'w.idx')).toThrow(/cut short/);
  });

  it('reads files from disk and reports a missing one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mrl-idx-'));
    await writeFile(join(dir, 'a.gz'), gzipSync(idxBytes([1], [9])));
    expect((await readIdx(join(dir, 'a.gz'))).data[0]).toBe(9);
    const error = await readIdx(join(dir, 'nope')).catch((e: unknown) => e);
    expect(MrlError.is(error) && error.kind).toBe('missing-file');
  });

  it('loads Fashion-MNIST from the Debian package', async () => {
    const data = await loadFashionMnist(FASHION_MNIST_DIR);
    expect(data.train.count).toBe(60000);
    expect(data.test.count).toBe(10000);
    expect(data.train.height * data.train.width).toBe(784);
    expect(Math.max(...data.test.labels)).toBe(9);
  });
});

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MrlError } from '@mrl/core/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { openIndex, saveIndex, updateIndex } from '../../src/node/index-file.js';
import { acquireWriterLock } from '../../src/node/lock.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { clustered } from '../synthetic.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mrl-update-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const d = 24;
const data = clustered(400, 10, d, 8, 4);
const ids = Array.from({ length: 400 }, (_, i) => `v${i}`);
const base = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 300 * d), {
  dim: d,
  ids: ids.slice(0, 300),
  labels: data.labels.slice(0, 300),
});

describe('insert, remove, save, reopen', () => {
  it('withAdded then withRemoved equals the index built from the remaining rows, and survives save/reopen', () => {
    const file = path.join(dir, 'grow.mrlidx');
    saveIndex(base, file);
    const added = updateIndex(file, (index) =>
      index.withAdded(data.vectors.slice(300 * d), { ids: ids.slice(300), labels: data.labels.slice(300) }),
    );
    expect(added.size).toBe(400);
    const removed = updateIndex(file, (index) => index.withRemoved([0, 150, 399, 150]));
    const keep = Array.from({ length: 400 }, (_, i) => i).filter((i) => i !== 0 && i !== 150 && i !== 399);
    const expected = MatryoshkaIndex.fromVectors(
      Float32Array.from(keep.flatMap((i) => [...data.vectors.subarray(i * d, (i + 1) * d)])),
      {
        dim: d,
        ids: keep.map((i) => ids[i] as string),
        labels: keep.map((i) => data.labels[i] as number),
      },
    );
    const reopened = openIndex(file);
    for (const index of [removed, reopened]) {
      expect(index.size).toBe(397);
      expect(Array.from(index.vectors)).toEqual(Array.from(expected.vectors));
      expect(index.ids).toEqual(expected.ids);
      expect(Array.from(index.labels ?? [])).toEqual(Array.from(expected.labels ?? []));
      const a = index.search(data.queries, { k: 5 });
      const b = expected.search(data.queries, { k: 5 });
      expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
    }
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('grow'))).toEqual(['grow.mrlidx']); // no lock or temp left
  });

  it('refuses added rows without the ids and labels the index has, and removing every row', () => {
    expect(() => base.withAdded(data.vectors.slice(0, d))).toThrow(
      /this index has ids: the 1 added rows need ids too\./,
    );
    const plain = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 10 * d), { dim: d });
    expect(() => plain.withAdded(data.vectors.slice(0, d), { labels: [1] })).toThrow(
      /this index has no labels, but labels were given for the added rows\./,
    );
    expect(() => plain.withAdded(Float32Array.of(Number.NaN, ...new Array(d - 1).fill(0)))).toThrow(
      /added vectors row 0 holds NaN/,
    );
    expect(() => plain.withRemoved(Array.from({ length: 10 }, (_, i) => i))).toThrow(/would leave the index empty/);
    expect(() => plain.withRemoved([10])).toThrow(/rows\[0\] to remove must be an integer in \[0, 9\], got 10/);
  });
});

describe('writer lock', () => {
  it('refuses a second writer while one holds the lock, naming it, and leaves the file as it was', () => {
    const file = path.join(dir, 'locked.mrlidx');
    saveIndex(base, file);
    const before = fs.readFileSync(file);
    let inner: unknown;
    updateIndex(file, (index) => {
      try {
        saveIndex(index.withRemoved([0]), file);
      } catch (e) {
        inner = e;
      }
      return index;
    });
    expect(MrlError.is(inner)).toBe(true);
    expect((inner as MrlError).message).toBe(
      `index file ${file} is being written by another writer (process ${process.pid} on ${os.hostname()}, lock file ${file}.lock).`,
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  it('takes over a lock left by a process that has exited', () => {
    const file = path.join(dir, 'stale.mrlidx');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: Number(gone), host: os.hostname() }));
    saveIndex(base, file);
    expect(openIndex(file).size).toBe(300);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
    const release = acquireWriterLock(file);
    expect(() => acquireWriterLock(file)).toThrow(/is being written by another writer/);
    release();
    acquireWriterLock(file)();
  });
});

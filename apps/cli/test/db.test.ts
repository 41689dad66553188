import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MatryoshkaIndex } from '@mrl/adaptive';
import { saveIndex } from '@mrl/adaptive/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../src/npy.js';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

// mrl-cli index --to pglite:<dir> and mrl-cli search --db on vectors written here (no training).
const n = 2000;
const d = 32;
const nq = 12;
let dir: string;
let index: MatryoshkaIndex;
let queries: Float32Array;

beforeAll(async () => {
  dir = await tempDir('db');
  let s = 7;
  const random = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  // A decaying spectrum, as in a Matryoshka embedding: early dims carry most of the variance.
  const make = (rows: number) => Float32Array.from({ length: rows * d }, (_, i) => random() / (1 + (i % d) / 4));
  index = MatryoshkaIndex.fromVectors(make(n), { dim: d });
  queries = make(nq);
  saveIndex(index, join(dir, 'train.mrlidx'));
  await writeFile(join(dir, 'queries.npy'), encodeNpy(queries, [nq, d]));
  const bad = queries.slice();
  bad[d + 5] = Number.NaN;
  await writeFile(join(dir, 'nan.npy'), encodeNpy(bad, [nq, d]));
});

describe('mrl-cli index and search --db (PGlite)', () => {
  it('writes the index into PGlite and searches it; the reported recall is against MatryoshkaIndex exact hits', async () => {
    const db = `pglite:${join(dir, 'vectors.pg')}`;
    const wrote = await cli(['index', '--from', join(dir, 'train.mrlidx'), '--to', db, '--prefix-dim', '8']);
    expectOk(wrote);
    expect(wrote.stdout).toMatch(
      /^wrote 2000 vectors \(d=32, vector\) to table mrl_vectors of pglite:.* HNSW index on subvector\(embedding, 1, 8\), cosine\n$/,
    );
    const r = await cli([
      'search',
      '--db',
      db,
      '--queries',
      join(dir, 'queries.npy'),
      '--format',
      'json',
      '--show',
      '12',
    ]);
    expectOk(r);
    const out = JSON.parse(r.stdout) as {
      dim: number;
      prefixDim: number;
      methods: { method: string; recall: number }[];
      shown: { hits: { row: number; score: number }[] }[];
    };
    expect([out.dim, out.prefixDim]).toEqual([d, 8]);
    expect(out.methods.map((m) => m.method)).toEqual(['exact SQL', 'two-stage SQL']);
    expect(out.methods[1]!.recall).toBeGreaterThanOrEqual(0.9);
    const exact = index.search(queries, { k: 10 });
    let overlap = 0;
    out.shown.forEach((s, q) => {
      const want = new Set(exact.ids.subarray(q * 10, (q + 1) * 10));
      overlap += s.hits.filter((h) => want.has(h.row)).length;
    });
    expect(overlap / (nq * 10)).toBeCloseTo(out.methods[1]!.recall, 10);

    const again = await cli(['index', '--from', join(dir, 'train.mrlidx'), '--to', db]);
    expect(expectOneParagraphError(again)).toBe(
      'error: table mrl_vectors already exists in the database. Pass another table name, or replace it (--replace).',
    );
    const nan = await cli(['search', '--db', db, '--queries', join(dir, 'nan.npy')]);
    expect(expectOneParagraphError(nan)).toMatch(/^error: queries row 1 holds NaN at position 5 \(of 32\)/);
  });

  it('refuses a --db that is not a database URL, and NaN queries against an index file', async () => {
    const bad = await cli(['search', '--db', 'mysql://x', '--queries', join(dir, 'queries.npy')]);
    expect(expectOneParagraphError(bad)).toBe(
      "error: 'mysql://x' is not a database URL. Use pglite:<directory>, pglite:memory or postgres://user:password@host:port/database.",
    );
    const nan = await cli(['search', '--index', join(dir, 'train.mrlidx'), '--queries', join(dir, 'nan.npy')]);
    expect(expectOneParagraphError(nan)).toMatch(
      /^error: \/.*nan\.npy: query row 1 holds NaN at dim 5; a search with it would rank every candidate alike\./,
    );
  });
});

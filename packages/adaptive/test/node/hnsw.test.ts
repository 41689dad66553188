import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MrlError } from '@mrl/core/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { recallAtK } from '../../src/metrics.js';
import { PrefixHnsw } from '../../src/node/hnsw.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { clustered } from '../synthetic.js';

const d = 64;
const data = clustered(6000, 60, d, 60, 21);
const index = MatryoshkaIndex.fromVectors(data.vectors, { dim: d });
const exact = index.search(data.queries, { k: 10 });

describe('PrefixHnsw', () => {
  it.each([
    ['f32', 16, 0.99],
    ['f16', 16, 0.99],
    ['i8', 16, 0.99],
    ['b1', 64, 0.97],
  ] as const)('%s graph on the first %i dims + exact re-rank: recall@10 vs exact >= %f', (quantization, dim, floor) => {
    const graph = PrefixHnsw.build(index, { dim, quantization, expansionSearch: 200 });
    expect(graph.size).toBe(6000);
    const r = graph.search(data.queries, { shortlistK: 200, k: 10 });
    const recall = recallAtK(r, exact, 10);
    expect(recall).toBeGreaterThanOrEqual(floor);
    // A re-ranked hit carries its exact full-dim score: where the ids agree, so do the scores.
    for (let i = 0; i < r.ids.length; i++) {
      if (r.ids[i] === exact.ids[i]) expect(r.scores[i]).toBeCloseTo(exact.scores[i] as number, 5);
    }
    expect(r.stages.map((s) => [s.kind, s.dim, s.kept])).toEqual([
      ['hnsw', dim, 200],
      ['float', d, 10],
    ]);
    const perVector = { f32: 4 * dim, f16: 2 * dim, i8: dim, b1: dim / 8 }[quantization];
    expect(graph.vectorBytes).toBe(6000 * perVector);
  });

  it('one query (usearch answers it with a single match list) gets the hits it gets in a batch', () => {
    const graph = PrefixHnsw.build(index, { dim: 16, expansionSearch: 100 });
    const batch = graph.search(data.queries.subarray(0, 3 * d), { shortlistK: 50, k: 10 });
    const one = graph.search(data.queries.subarray(d, 2 * d), { shortlistK: 50, k: 10 });
    expect(Array.from(one.ids)).toEqual(Array.from(batch.ids.subarray(10, 20)));
  });

  it('a longer prefix shortlists better than a shorter one at the same K (Matryoshka ordering)', () => {
    const short = PrefixHnsw.build(index, { dim: 8, expansionSearch: 100 });
    const long = PrefixHnsw.build(index, { dim: 32, expansionSearch: 100 });
    const rs = recallAtK(short.search(data.queries, { shortlistK: 20, k: 10 }), exact, 10);
    const rl = recallAtK(long.search(data.queries, { shortlistK: 20, k: 10 }), exact, 10);
    expect(rl).toBeGreaterThan(rs);
  });

  it('refuses a binary prefix that is not whole bytes, and a NaN query naming its row', () => {
    expect(() => PrefixHnsw.build(index, { dim: 12, quantization: 'b1' })).toThrow(
      /a binary HNSW first stage packs 8 dims per byte; its dim must be a multiple of 8, got 12/,
    );
    const graph = PrefixHnsw.build(MatryoshkaIndex.fromVectors(data.vectors.slice(0, 200 * d), { dim: d }), {
      dim: 8,
    });
    const q = data.queries.slice(0, 3 * d);
    q[2 * d + 5] = Number.NaN;
    let caught: unknown;
    try {
      graph.search(q, { shortlistK: 20, k: 10 });
    } catch (e) {
      caught = e;
    }
    expect(MrlError.is(caught)).toBe(true);
    expect((caught as MrlError).message).toMatch(/^queries row 2 holds NaN at position 5/);
    expect(() => graph.search(data.queries, { shortlistK: 5, k: 10 })).toThrow(/shortlistK = 5 is smaller than k = 10/);
  });
});

describe('PrefixHnsw save and view', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mrl-hnsw-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a saved graph opened memory-mapped gives the same hits, and its efSearch is a search-time setting', () => {
    const built = PrefixHnsw.build(index, { dim: 16, quantization: 'i8', expansionSearch: 200 });
    const file = path.join(dir, 'graph.hnsw');
    built.save(file);
    expect(fs.readdirSync(dir)).toEqual(['graph.hnsw']); // no temp file left
    const viewed = PrefixHnsw.view(index, file, { dim: 16, quantization: 'i8', expansionSearch: 200 });
    const a = built.search(data.queries, { shortlistK: 100, k: 10 });
    const b = viewed.search(data.queries, { shortlistK: 100, k: 10 });
    expect(Array.from(b.ids)).toEqual(Array.from(a.ids));
    const narrow = PrefixHnsw.view(index, file, { dim: 16, quantization: 'i8', expansionSearch: 10 });
    const shortA = recallAtK(narrow.search(data.queries, { shortlistK: 10, k: 10 }), exact, 10);
    const shortB = recallAtK(viewed.search(data.queries, { shortlistK: 10, k: 10 }), exact, 10);
    expect(shortA).toBeLessThan(shortB);
  });

  it('names a missing file, a truncated file, and a graph of another index', () => {
    expect(() => PrefixHnsw.view(index, path.join(dir, 'none.hnsw'), { dim: 16 })).toThrow(
      /HNSW graph .*none\.hnsw does not exist\./,
    );
    const file = path.join(dir, 'small.hnsw');
    const small = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 300 * d), { dim: d });
    PrefixHnsw.build(small, { dim: 16 }).save(file);
    expect(() => PrefixHnsw.view(index, file, { dim: 16 })).toThrow(
      /HNSW graph .*small\.hnsw holds 300 vectors of dim 16, but the index has 6000 rows/,
    );
    const cut = path.join(dir, 'cut.hnsw');
    fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 1000));
    let caught: unknown;
    try {
      PrefixHnsw.view(small, cut, { dim: 16 });
    } catch (e) {
      caught = e;
    }
    expect(MrlError.is(caught)).toBe(true);
    expect((caught as MrlError).kind).toBe('corrupt-file');
  });
});

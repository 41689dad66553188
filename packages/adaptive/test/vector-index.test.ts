import { MrlError } from '@mrl/core/errors';
import { describe, expect, it } from 'vitest';
import { defaultFunnel } from '../src/funnel.js';
import { meanAveragePrecisionAtK, recallAtK } from '../src/metrics.js';
import { MatryoshkaIndex } from '../src/vector-index.js';
import { bruteTopK, clustered, expectClose } from './synthetic.js';

const d = 64;
const data = clustered(3000, 37, d, 30, 5);
const index = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, labels: data.labels });
const nq = 37;

function bruteForce(dim: number, metric: 'dot' | 'cosine', k: number): { ids: number[][]; scores: number[][] } {
  const ids: number[][] = [];
  const scores: number[][] = [];
  for (let q = 0; q < nq; q++) {
    let qn = 0;
    for (let j = 0; j < dim; j++) qn += (data.queries[q * d + j] as number) ** 2;
    const s = Array.from({ length: 3000 }, (_, i) => {
      let dot = 0;
      let xn = 0;
      for (let j = 0; j < dim; j++) {
        const x = data.vectors[i * d + j] as number;
        dot += (data.queries[q * d + j] as number) * x;
        xn += x * x;
      }
      return metric === 'dot' ? dot : dot / Math.sqrt(xn) / Math.sqrt(qn);
    });
    const top = bruteTopK(s, k);
    ids.push(top);
    scores.push(top.map((i) => s[i] as number));
  }
  return { ids, scores };
}

describe('MatryoshkaIndex.search', () => {
  it.each([
    [64, 'cosine'],
    [16, 'cosine'],
    [24, 'dot'],
  ] as const)('dim %i %s equals brute force', (dim, metric) => {
    const r = index.search(data.queries, { k: 10, dim, metric });
    const ref = bruteForce(dim, metric, 10);
    // Ranks can swap only between near-ties (float32 norms vs float64 here): compare sets and scores.
    let same = 0;
    for (let q = 0; q < nq; q++) {
      const got = new Set(r.ids.subarray(q * 10, q * 10 + 10));
      for (const id of ref.ids[q]!) if (got.has(id)) same++;
      expectClose(r.scores.subarray(q * 10, q * 10 + 10), ref.scores[q]!, 1e-4);
    }
    expect(same / (nq * 10)).toBeGreaterThanOrEqual(0.99);
  });

  it('counts FLOPs: 2 per multiply-add, 1 per row norm scaling, 2m for the query norm', () => {
    expect(index.search(data.queries, { k: 10, dim: 16, metric: 'dot' }).flopsPerQuery).toBe(3000 * 2 * 16);
    expect(index.search(data.queries, { k: 10, dim: 16 }).flopsPerQuery).toBe(3000 * (2 * 16 + 1) + 2 * 16);
  });

  it('keeps one copy: prefixes are views into the vectors', () => {
    const p = index.prefix(5, 16);
    expect(p.length).toBe(16);
    expect(p.buffer).toBe(data.vectors.buffer);
    expect(p[3]).toBe(data.vectors[5 * d + 3]);
  });

  it('computes norms of a prefix dim outside prefixDims once, as one-off work', () => {
    const idx = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, prefixDims: [64] });
    const first = idx.search(data.queries, { k: 5, dim: 20 });
    expect(first.oneOffFlops).toBe(3000 * 2 * 20);
    expect(idx.search(data.queries, { k: 5, dim: 20 }).oneOffFlops).toBe(0);
  });

  it('rejects queries that are not whole rows of d values', () => {
    expect(() => index.search(new Float32Array(d + 1), { k: 1 })).toThrow(
      /queries has 65 values, which is not a positive multiple of the row length 64/,
    );
  });

  it.each([
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity'],
  ])('refuses a query holding %s, naming its row and position', (bad, text) => {
    const queries = data.queries.slice(0, 5 * d);
    queries[3 * d + 7] = bad;
    expect(() => index.search(queries, { k: 10 })).toThrow(
      new RegExp(`^queries row 3 holds ${text} at position 7 \\(of 64\\): vectors must be finite\\.$`),
    );
    expect(() => index.shortlistRerank(queries, { shortlistDim: 16, shortlistK: 50, rerankDim: d, k: 10 })).toThrow(
      /queries row 3 holds/,
    );
  });

  it('refuses index vectors holding NaN, naming the row', () => {
    const vectors = data.vectors.slice(0, 100 * d);
    vectors[42 * d] = Number.NaN;
    let caught: unknown;
    try {
      MatryoshkaIndex.fromVectors(vectors, { dim: d });
    } catch (e) {
      caught = e;
    }
    expect(MrlError.is(caught)).toBe(true);
    expect((caught as MrlError).message).toBe(
      'index vectors row 42 holds NaN at position 0 (of 64): vectors must be finite.',
    );
    expect((caught as MrlError).fix).toMatch(/Drop or recompute row 42/);
  });

  it('rejects a search dim beyond d', () => {
    expect(() => index.search(data.queries, { k: 1, dim: 65 })).toThrow(
      /search dim must be an integer in \[1, 64\], got 65/,
    );
  });

  it('rejects labels of the wrong length', () => {
    expect(() => MatryoshkaIndex.fromVectors(data.vectors, { dim: d, labels: [1, 2] })).toThrow(
      /labels has 2 entries for 3000 vectors/,
    );
  });
});

describe('shortlistRerank', () => {
  it('with Ds = Dr = d equals exact search exactly', () => {
    for (const metric of ['cosine', 'dot'] as const) {
      const exact = index.search(data.queries, { k: 10, metric });
      const r = index.shortlistRerank(data.queries, { shortlistDim: d, shortlistK: 40, rerankDim: d, k: 10, metric });
      expect(Array.from(r.ids)).toEqual(Array.from(exact.ids));
      expect(Array.from(r.scores)).toEqual(Array.from(exact.scores));
    }
  });

  it('Ds = 16 -> Dr = d keeps most of exact recall at a fraction of the FLOPs', () => {
    const exact = index.search(data.queries, { k: 10 });
    const r = index.shortlistRerank(data.queries, { shortlistDim: 16, shortlistK: 200, rerankDim: d, k: 10 });
    expect(recallAtK(r, exact, 10)).toBeGreaterThanOrEqual(0.9);
    expect(r.flopsPerQuery).toBeLessThan(0.4 * exact.flopsPerQuery);
    expect(r.stages.map((s) => [s.dim, s.candidatesPerQuery, s.kept])).toEqual([
      [16, 3000, 200],
      [64, 200, 10],
    ]);
  });

  it('rejects shortlistK < k', () => {
    expect(() => index.shortlistRerank(data.queries, { shortlistDim: 16, shortlistK: 5, rerankDim: d, k: 10 })).toThrow(
      /shortlistK = 5 is smaller than k = 10/,
    );
  });
});

describe('funnel', () => {
  it('runs the default funnel with high recall and reports each stage', () => {
    const exact = index.search(data.queries, { k: 10 });
    const f = defaultFunnel(d, 10);
    expect(f).toEqual({ dims: [16, 32, 64], shortlists: [200, 100] });
    const r = index.funnel(data.queries, { ...f, k: 10 });
    expect(r.k).toBe(10);
    expect(r.stages.map((s) => s.kept)).toEqual([200, 100, 10]);
    expect(recallAtK(r, exact, 10)).toBeGreaterThanOrEqual(0.9);
    const mapFunnel = meanAveragePrecisionAtK(r, data.queryLabels, data.labels, 10);
    const mapExact = meanAveragePrecisionAtK(exact, data.queryLabels, data.labels, 10);
    expect(mapFunnel).toBeGreaterThanOrEqual(mapExact - 0.05);
    const sum = r.stages.reduce((a, s) => a + s.flopsPerQuery, 0) + 2 * d;
    expect(r.flopsPerQuery).toBe(sum);
  });

  it('a one-stage funnel is exact search at that dim', () => {
    const r = index.funnel(data.queries, { dims: [32], shortlists: [], k: 7 });
    expect(Array.from(r.ids)).toEqual(Array.from(index.search(data.queries, { k: 7, dim: 32 }).ids));
  });

  it('returns min(k, N) hits on a tiny index', () => {
    const tiny = MatryoshkaIndex.fromVectors(data.vectors.slice(0, 3 * d), { dim: d });
    const r = tiny.funnel(data.queries, { dims: [16, 64], shortlists: [10], k: 10 });
    expect(r.k).toBe(3);
    expect(r.ids.length).toBe(nq * 3);
  });
});

describe('rerank', () => {
  it('with every row as a candidate equals exact search exactly, at full dim and at a prefix', () => {
    const n = 3000;
    const all = new Int32Array(nq * n);
    for (let q = 0; q < nq; q++) for (let i = 0; i < n; i++) all[q * n + i] = n - 1 - i; // any order
    for (const [dim, metric] of [
      [d, 'cosine'],
      [16, 'dot'],
    ] as const) {
      const r = index.rerank(data.queries, all, n, { k: 10, dim, metric });
      const e = index.search(data.queries, { k: 10, dim, metric });
      expect(Array.from(r.ids)).toEqual(Array.from(e.ids));
      expect(Array.from(r.scores)).toEqual(Array.from(e.scores));
    }
  });

  it('skips -1 slots and duplicates, and pads queries with too few candidates', () => {
    const candidates = Int32Array.from([5, 5, -1, 9, /* query 1 */ -1, -1, -1, 7]);
    const r = index.rerank(data.queries.subarray(0, 2 * d), candidates, 4, { k: 3 });
    expect(Array.from(r.ids.subarray(0, 3)).sort()).toEqual([-1, 5, 9]);
    expect(r.ids[2]).toBe(-1);
    expect(r.scores[2]).toBe(Number.NEGATIVE_INFINITY);
    expect(Array.from(r.ids.subarray(3))).toEqual([7, -1, -1]);
    expect(r.stages[0]?.candidatesPerQuery).toBe(1.5);
  });

  it('rejects a candidate that is not a row, and a candidate count that does not match', () => {
    expect(() => index.rerank(data.queries.subarray(0, d), Int32Array.from([1, 3000]), 2, { k: 1 })).toThrow(
      /candidates\[1\] = 3000 is not a row of this index \(0..2999\)/,
    );
    expect(() => index.rerank(data.queries.subarray(0, 2 * d), Int32Array.from([1, 2, 3]), 2, { k: 1 })).toThrow(
      /candidates has 3 ids for 2 queries x 2 per query/,
    );
  });
});

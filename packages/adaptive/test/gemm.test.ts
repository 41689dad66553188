import { describe, expect, it } from 'vitest';
import { gemmTopK, jsGemm } from '../src/gemm.js';
import { recallAtK } from '../src/metrics.js';
import { blockedTopK } from '../src/scoring.js';
import { MatryoshkaIndex } from '../src/vector-index.js';
import { clustered, expectClose, gaussian, rng } from './synthetic.js';

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, gaussian(rng(seed)));
}

function drain(heaps: { drainInto(ids: Int32Array, s: Float32Array, o: number): number }[], k: number) {
  const ids = new Int32Array(heaps.length * k);
  const scores = new Float32Array(heaps.length * k);
  heaps.forEach((h, q) => h.drainInto(ids, scores, q * k));
  return { ids, scores };
}

describe('jsGemm', () => {
  it('equals a naive a @ b^T on odd sizes (partial tiles and blocks)', () => {
    const [m, n, k] = [37, 301, 19];
    const a = randomMatrix(m, k, 1);
    const b = randomMatrix(n, k, 2);
    const y = new Float32Array(m * n);
    jsGemm.multiplyTransposed(a, m, b, n, k, y);
    const expected = new Float32Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += (a[i * k + t] as number) * (b[j * k + t] as number);
        expected[i * n + j] = s;
      }
    expectClose(y, expected, 1e-5);
  });
});

describe('gemmTopK', () => {
  it.each([
    [48, 48, false],
    [48, 20, true],
    [64, 7, false],
  ])('stride %i, dim %i, rowScale %s: equals the blocked JS scan', (stride, dim, scaled) => {
    const [nq, nr, k] = [300, 2100, 13]; // more queries than one batch, rows over several chunks
    const q = randomMatrix(nq, stride, 3);
    const x = randomMatrix(nr, stride, 4);
    const scale = scaled ? Float32Array.from({ length: nr }, (_, i) => 0.5 + (i % 7) / 7) : undefined;
    const viaGemm = drain(gemmTopK(jsGemm, q, nq, x, nr, stride, dim, k, scale), k);
    const reference = drain(
      blockedTopK({ data: q, rows: nq, stride }, { data: x, rows: nr, stride }, dim, k, scale),
      k,
    );
    expect(Array.from(viaGemm.ids)).toEqual(Array.from(reference.ids));
    expectClose(viaGemm.scores, reference.scores, 1e-5);
  });

  it('does not modify the queries when it zeroes past a prefix', () => {
    const q = randomMatrix(3, 8, 5);
    const before = q.slice();
    gemmTopK(jsGemm, q, 3, randomMatrix(50, 8, 6), 50, 8, 2, 5);
    expect(Array.from(q)).toEqual(Array.from(before));
  });
});

describe('MatryoshkaIndex with a gemm', () => {
  const d = 64;
  const data = clustered(2500, 40, d, 25, 7);
  const plain = MatryoshkaIndex.fromVectors(data.vectors, { dim: d });
  const viaGemm = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, gemm: jsGemm });

  it.each([
    [64, 'cosine'],
    [16, 'cosine'],
    [32, 'dot'],
  ] as const)('exact search at dim %i (%s) returns what the JS scan returns', (dim, metric) => {
    const a = viaGemm.search(data.queries, { k: 10, dim, metric });
    const b = plain.search(data.queries, { k: 10, dim, metric });
    expect(recallAtK(a, b, 10)).toBe(1);
    expectClose(a.scores, b.scores, 1e-5);
    expect(a.flopsPerQuery).toBe(b.flopsPerQuery);
  });

  it('uses it for the first stage of shortlist/re-rank', () => {
    const options = { shortlistDim: 16, shortlistK: 100, rerankDim: d, k: 10 };
    const a = viaGemm.shortlistRerank(data.queries, options);
    const b = plain.shortlistRerank(data.queries, options);
    expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
  });
});

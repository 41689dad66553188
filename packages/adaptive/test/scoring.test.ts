import { describe, expect, it } from 'vitest';
import { blockedTopK, dotProducts } from '../src/scoring.js';
import { bruteTopK, expectClose, gaussian, rng } from './synthetic.js';

function randomMatrix(rows: number, stride: number, seed: number): Float32Array {
  const g = gaussian(rng(seed));
  return Float32Array.from({ length: rows * stride }, g);
}

function naiveDot(
  q: Float32Array,
  qs: number,
  qi: number,
  x: Float32Array,
  xs: number,
  xi: number,
  dim: number,
): number {
  let s = 0;
  for (let j = 0; j < dim; j++) s += (q[qi * qs + j] as number) * (x[xi * xs + j] as number);
  return s;
}

describe('dotProducts', () => {
  it('equals naive dot products on odd sizes (partial query tiles, partial row blocks, dim < stride)', () => {
    const [nq, nr, stride, dim] = [7, 1301, 50, 37];
    const q = randomMatrix(nq, stride, 1);
    const x = randomMatrix(nr, stride, 2);
    const out = dotProducts({ data: q, rows: nq, stride }, { data: x, rows: nr, stride }, dim);
    const expected = new Float32Array(nq * nr);
    for (let a = 0; a < nq; a++)
      for (let b = 0; b < nr; b++) expected[a * nr + b] = naiveDot(q, stride, a, x, stride, b, dim);
    expectClose(out, expected, 1e-6);
  });

  it('spans several query blocks', () => {
    const [nq, nr, d] = [70, 40, 16];
    const q = randomMatrix(nq, d, 3);
    const x = randomMatrix(nr, d, 4);
    const out = dotProducts({ data: q, rows: nq, stride: d }, { data: x, rows: nr, stride: d }, d);
    expect(out[69 * nr + 39]).toBeCloseTo(naiveDot(q, d, 69, x, d, 39, d), 5);
  });

  it('names the shortfall when a matrix is too small', () => {
    expect(() =>
      dotProducts(
        { data: new Float32Array(10), rows: 1, stride: 10 },
        { data: new Float32Array(15), rows: 2, stride: 10 },
        10,
      ),
    ).toThrow(/rows has 15 values but 2 rows of stride 10 at dim 10 need 20/);
  });
});

describe('blockedTopK', () => {
  it('equals a full sort of naive scores, with and without a row scale', () => {
    const [nq, nr, d, dim, k] = [9, 2000, 24, 20, 15];
    const q = randomMatrix(nq, d, 5);
    const x = randomMatrix(nr, d, 6);
    const scale = Float32Array.from({ length: nr }, (_, i) => 1 + (i % 7) / 10);
    for (const rowScale of [undefined, scale]) {
      const heaps = blockedTopK({ data: q, rows: nq, stride: d }, { data: x, rows: nr, stride: d }, dim, k, rowScale);
      heaps.forEach((heap, a) => {
        const ids = new Int32Array(k);
        heap.drainInto(ids, new Float64Array(k), 0);
        const scores = Array.from(
          { length: nr },
          (_, b) => naiveDot(q, d, a, x, d, b, dim) * (rowScale ? (rowScale[b] as number) : 1),
        );
        expect(Array.from(ids)).toEqual(bruteTopK(scores, k));
      });
    }
  });
});

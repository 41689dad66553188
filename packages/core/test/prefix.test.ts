import { describe, expect, it } from 'vitest';
import { truncateAndNormalize } from '../src/prefix.js';

describe('truncateAndNormalize', () => {
  it('keeps the first m values of each row and gives each unit length', () => {
    const data = Float32Array.from([3, 4, 100, -7, 0, 0, 5, 1]);
    const out = truncateAndNormalize(data, 2, 4, 2);
    expect([...out]).toEqual([0.6, 0.8, 0, 0].map((v) => Math.fround(v)));
    const three = truncateAndNormalize(data, 2, 4, 3);
    const norm = Math.hypot(3, 4, 100);
    [3 / norm, 4 / norm, 100 / norm].forEach((v, j) => expect(three[j]).toBeCloseTo(v, 6));
    expect(three[5]).toBeCloseTo(1, 6); // row 2 prefix [0, 0, 5]
  });

  it('leaves a zero prefix at zero instead of NaN, and can skip normalising', () => {
    const out = truncateAndNormalize(Float32Array.from([0, 0, 1, 2]), 1, 4, 2);
    expect([...out]).toEqual([0, 0]);
    expect([...truncateAndNormalize(Float32Array.from([3, 4, 9]), 1, 3, 2, { normalize: false })]).toEqual([3, 4]);
  });

  it('refuses a bad dim, a size mismatch and a non-finite value, naming the row', () => {
    const data = new Float32Array(8);
    expect(() => truncateAndNormalize(data, 2, 4, 5)).toThrow(/prefix dim 5 is not an integer in \[1, 4\]/);
    expect(() => truncateAndNormalize(data, 3, 4, 2)).toThrow(/got 8 values for 3 rows of 4/);
    data[5] = Number.NaN;
    expect(() => truncateAndNormalize(data, 2, 4, 2)).toThrow(/row 1 has a non-finite value \(NaN\) at dim 1/);
  });
});

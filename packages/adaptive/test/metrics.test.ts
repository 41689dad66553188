import { describe, expect, it } from 'vitest';
import { meanAveragePrecisionAtK, recallAtK } from '../src/metrics.js';

describe('recallAtK', () => {
  it('counts the overlap with the exact top-k, in any order', () => {
    const exact = { numQueries: 2, k: 3, ids: [1, 2, 3, 4, 5, 6] };
    const result = { numQueries: 2, k: 3, ids: [3, 1, 9, 7, 8, 9] };
    expect(recallAtK(result, exact, 3)).toBeCloseTo((2 / 3 + 0) / 2, 12);
    expect(recallAtK(result, exact, 1)).toBe(0); // 3 != 1, 7 != 4
  });

  it('names a k beyond the exact hits', () => {
    expect(() =>
      recallAtK({ numQueries: 1, k: 3, ids: [1, 2, 3] }, { numQueries: 1, k: 3, ids: [1, 2, 3] }, 5),
    ).toThrow(/k must be an integer in \[1, 3\], got 5/);
  });
});

describe('meanAveragePrecisionAtK', () => {
  it('matches a hand computation, normalised by min(#relevant, k)', () => {
    // db labels: rows 0-2 are class 0 (3 relevant), rows 3-9 class 1.
    const db = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1];
    // Query of class 0: ranks 1 and 3 relevant -> (1/1 + 2/3) / min(3, 4).
    // Query of class 1: ranks 2, 3, 4 relevant -> (1/2 + 2/3 + 3/4) / min(7, 4).
    const result = { numQueries: 2, k: 4, ids: [0, 5, 1, 6, 0, 3, 4, 5] };
    const ap0 = (1 + 2 / 3) / 3;
    const ap1 = (1 / 2 + 2 / 3 + 3 / 4) / 4;
    expect(meanAveragePrecisionAtK(result, [0, 1], db, 4)).toBeCloseTo((ap0 + ap1) / 2, 12);
  });

  it('is 1 for a perfect ranking and skips queries without relevant rows', () => {
    const db = [0, 0, 1];
    expect(meanAveragePrecisionAtK({ numQueries: 2, k: 2, ids: [0, 1, 2, 0] }, [0, 7], db, 2)).toBe(1);
  });

  it('names a result id outside the labels', () => {
    expect(() => meanAveragePrecisionAtK({ numQueries: 1, k: 1, ids: [5] }, [0], [0, 1], 1)).toThrow(
      /result id 5 \(query 0, rank 0\) is outside the 2 database labels/,
    );
  });
});

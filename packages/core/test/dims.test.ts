import { describe, expect, it } from 'vitest';
import { defaultNestingDims, resolveNesting, sampleDimIndices } from '../src/dims.js';
import { MrlError } from '../src/errors.js';
import { createRandom } from '../src/rng.js';

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(MrlError.is(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('nesting dims', () => {
  it('defaults to powers of two from 8 up to d, with d always included', () => {
    expect(defaultNestingDims(64)).toEqual([8, 16, 32, 64]);
    expect(defaultNestingDims(100)).toEqual([8, 16, 32, 64, 100]);
    expect(defaultNestingDims(2048)).toEqual([8, 16, 32, 64, 128, 256, 512, 1024, 2048]);
    expect(defaultNestingDims(6)).toEqual([6]);
    expect(defaultNestingDims(64, 2)).toEqual([2, 4, 8, 16, 32, 64]);
    expect(resolveNesting({ embeddingDim: 48, minDim: 16 })).toEqual({ dims: [16, 32, 48], weights: [1, 1, 1] });
  });

  it('keeps valid explicit dims and weights', () => {
    expect(resolveNesting({ embeddingDim: 12, dims: [3, 6, 12], weights: [1, 0.5, 2] })).toEqual({
      dims: [3, 6, 12],
      weights: [1, 0.5, 2],
    });
  });

  it('names each invalid value', () => {
    expect(messageOf(() => defaultNestingDims(0))).toBe('embeddingDim must be a positive integer, got 0.');
    expect(messageOf(() => defaultNestingDims(64, 6))).toBe('minDim must be a power of two >= 1, got 6.');
    expect(messageOf(() => resolveNesting({ embeddingDim: 1.5, dims: [1] }))).toBe(
      'embeddingDim must be a positive integer, got 1.5.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [] }))).toBe(
      'dims must list at least one nesting dim.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [8, 128] }))).toBe(
      'dims[1] = 128 is not an integer in [1, 64] (the embedding size d).',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [0, 8] }))).toBe(
      'dims[0] = 0 is not an integer in [1, 64] (the embedding size d).',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [8, 8.5] }))).toBe(
      'dims[1] = 8.5 is not an integer in [1, 64] (the embedding size d).',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [8, 8, 64] }))).toBe(
      'dims must be unique: 8 appears twice.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, dims: [16, 8] }))).toBe(
      'dims must be sorted ascending: 8 comes after 16.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 64, weights: [1, 1] }))).toBe(
      'weights has 2 entries but there are 4 nesting dims (8, 16, 32, 64).',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 16, weights: [1, -1] }))).toBe(
      'weights[1] = -1 must be a finite number >= 0.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 16, weights: [Number.NaN, 1] }))).toBe(
      'weights[0] = NaN must be a finite number >= 0.',
    );
    expect(messageOf(() => resolveNesting({ embeddingDim: 16, weights: [0, 0] }))).toBe(
      'weights are all 0: the loss would not train anything.',
    );
    expect(messageOf(() => sampleDimIndices(4, 0, Math.random))).toBe('dimsPerStep must be a positive integer, got 0.');
  });

  it('sampled dims are sorted, unique, end with the full dim, and cover the others', () => {
    const random = createRandom(3);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 600; i++) {
      const picked = sampleDimIndices(6, 3, random);
      expect(picked).toHaveLength(3);
      expect(picked.at(-1)).toBe(5);
      expect(new Set(picked).size).toBe(3);
      expect([...picked].sort((a, b) => a - b)).toEqual(picked);
      for (const p of picked) counts[p]! += 1;
    }
    // Each of the five smaller dims is drawn 2 times in 5 on average (240 of 600).
    for (let i = 0; i < 5; i++) expect(Math.abs(counts[i]! - 240)).toBeLessThan(60);
    expect(sampleDimIndices(4, 9, random)).toEqual([0, 1, 2, 3]);
  });
});

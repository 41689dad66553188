import { describe, expect, it } from 'vitest';
import { TopKHeap, topK } from '../src/topk.js';
import { MrlError } from '@mrl/core/errors';
import { bruteTopK, rng } from './synthetic.js';

describe('TopKHeap', () => {
  it('equals a full sort, ties broken by lower id', () => {
    const rand = rng(7);
    for (const [n, k] of [
      [1, 1],
      [10, 3],
      [1000, 10],
      [500, 500],
      [300, 1000],
    ] as const) {
      // Rounded scores make many ties.
      const scores = Array.from({ length: n }, () => Math.round(rand() * 50) / 10);
      const heap = new TopKHeap(Math.min(k, n));
      scores.forEach((s, i) => heap.push(s, i));
      const ids = new Int32Array(heap.size);
      const out = new Float64Array(heap.size);
      heap.drainInto(ids, out, 0);
      const expected = bruteTopK(scores, k);
      expect(Array.from(ids)).toEqual(expected);
      expect(Array.from(out)).toEqual(expected.map((i) => scores[i]));
      expect(heap.size).toBe(0);
    }
  });

  it('ignores pushes below the threshold and NaN once full', () => {
    const heap = new TopKHeap(2);
    heap.push(1, 0);
    expect(heap.threshold).toBe(-Infinity);
    heap.push(3, 1);
    expect(heap.threshold).toBe(1);
    heap.push(0.5, 2);
    heap.push(Number.NaN, 3);
    const ids = new Int32Array(2);
    heap.drainInto(ids, new Float32Array(2), 0);
    expect(Array.from(ids)).toEqual([1, 0]);
  });

  it('rejects a capacity of 0', () => {
    expect(() => new TopKHeap(0)).toThrow(/top-k capacity must be an integer >= 1, got 0/);
  });
});

describe('topK', () => {
  it('returns the best k of a list with their scores', () => {
    const r = topK([0.2, 0.7, 0.1, 0.7, 0.9], 3);
    expect(Array.from(r.ids)).toEqual([4, 1, 3]);
    expect(Array.from(r.scores)).toEqual([0.9, 0.7, 0.7]);
  });

  it('throws an MrlError on an empty list', () => {
    let err: unknown;
    try {
      topK([], 3);
    } catch (e) {
      err = e;
    }
    expect(MrlError.is(err) && err.kind).toBe('invalid-argument');
    expect((err as Error).message).toMatch(/empty score list/);
  });
});

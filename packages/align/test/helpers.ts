import { expect } from 'vitest';

/** Element-wise |a - b| <= atol + rtol * |b| (tfjs `expectArraysClose`). */
export function expectClose(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  atol = 1e-5,
  rtol = 1e-4,
): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const b = typeof expected === 'number' ? [expected] : Array.from(expected);
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => {
    const y = b[i]!;
    if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y)))
      expect.fail(`element ${i}: ${x} vs expected ${y} (atol ${atol}, rtol ${rtol})`);
  });
}

/** A seeded uniform stream for test data. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

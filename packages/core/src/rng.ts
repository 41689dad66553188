/**
 * Seeded random numbers. A stream is keyed by (seed, stream id), so the order of a given epoch
 * or the dims sampled at a given step can be recomputed after a resume without saved state.
 */
export type Random = () => number;

function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32 generator over a state derived from the seed and the stream keys. */
export function createRandom(seed: number, ...streams: number[]): Random {
  let state = mix32(seed ^ 0x9e3779b9);
  for (const key of streams) state = mix32(state ^ mix32(key + 0x6d2b79f5));
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates permutation of 0..n-1. */
export function permutation(n: number, random: Random): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** A 31-bit integer seed for TF.js initialisers, drawn from a stream. */
export function nextSeed(random: Random): number {
  return Math.floor(random() * 2147483647);
}

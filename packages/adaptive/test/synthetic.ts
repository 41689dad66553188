/** Seeded data for the adaptive tests: no randomness leaks between runs. */
import { createRandom } from '@mrl/core/rng';

/** Seeded floats in [0, 1): core's generator, so the tests use the project's one PRNG. */
export function rng(seed: number): () => number {
  return createRandom(seed);
}

/** Standard normal samples (Box-Muller). */
export function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

export interface Clustered {
  readonly vectors: Float32Array; // [n, d]
  readonly labels: Int32Array; // [n]
  readonly queries: Float32Array; // [nq, d]
  readonly queryLabels: Int32Array; // [nq]
}

/**
 * Matryoshka-like clustered data: class centres whose per-coordinate spread decays with the
 * coordinate index (early coordinates carry most of the signal), plus isotropic-ish noise.
 */
export function clustered(n: number, nq: number, d: number, classes: number, seed = 1, noise = 0.35): Clustered {
  const g = gaussian(rng(seed));
  const centres = new Float32Array(classes * d);
  for (let c = 0; c < classes; c++) for (let j = 0; j < d; j++) centres[c * d + j] = g() / Math.sqrt(1 + j / 4);
  const make = (count: number): [Float32Array, Int32Array] => {
    const x = new Float32Array(count * d);
    const y = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const c = i % classes;
      y[i] = c;
      for (let j = 0; j < d; j++) x[i * d + j] = (centres[c * d + j] as number) + (noise * g()) / Math.sqrt(1 + j / 16);
    }
    return [x, y];
  };
  const [vectors, labels] = make(n);
  const [queries, queryLabels] = make(nq);
  return { vectors, labels, queries, queryLabels };
}

/** Brute-force reference: ids of the top-k rows by `score`, ties to the lower id. */
export function bruteTopK(scores: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b)
    .slice(0, k);
}

/** Element-wise closeness with a relative/absolute tolerance (tfjs expectArraysClose style). */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) {
      throw new Error(`arrays differ at ${i}: ${a} vs ${e} (tol ${tol})`);
    }
  }
}

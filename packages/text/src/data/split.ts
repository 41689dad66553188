import { MrlError } from '@mrl/core';

/** FNV-1a 32-bit hash of a string's UTF-16 code units, mixed with a seed. */
export function hashString(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32): FNV alone leaves the low bits poorly mixed for short keys.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Checks a test fraction: a number in (0, 1). */
export function checkTestFraction(testFraction: number): void {
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new MrlError(
      'invalid-argument',
      `testFraction must be between 0 and 1 (exclusive), got ${testFraction}.`,
      'Use e.g. 0.2 to hold out a fifth of the examples, or give a separate test file.',
    );
  }
}

/**
 * Deterministic train/test split by a hash of each example's key (its text): the same file
 * always splits the same way, whatever the order of its lines, and duplicate texts land on the
 * same side, so no test text is also a training text.
 *
 * @returns indices of the training and the test examples, each ascending.
 */
export function hashSplit(
  size: number,
  keyOf: (index: number) => string,
  testFraction: number,
  seed = 0,
): { train: number[]; test: number[] } {
  checkTestFraction(testFraction);
  const train: number[] = [];
  const test: number[] = [];
  const cut = testFraction * 2 ** 32;
  for (let i = 0; i < size; i++) (hashString(keyOf(i), seed) < cut ? test : train).push(i);
  return { train, test };
}

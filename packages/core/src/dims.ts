import { MrlError } from './errors.js';

/** How the nesting dims M and their loss weights are chosen. */
export interface NestingOptions {
  /** Size d of the full embedding. */
  embeddingDim: number;
  /** Explicit nesting dims; sorted ascending, unique, each in [1, d]. Default: powers of two from `minDim`, plus d. */
  dims?: readonly number[];
  /** Smallest power of two in the default list (default 8). */
  minDim?: number;
  /** One weight per dim (the reference's `relative_importance`); default all 1. */
  weights?: readonly number[];
}

export interface Nesting {
  readonly dims: readonly number[];
  readonly weights: readonly number[];
}

function isPositiveInteger(value: number): boolean {
  return Number.isInteger(value) && value >= 1;
}

/**
 * Powers of two from `minDim` below d, then d itself, which is always included even when it is
 * not a power of two (as in sentence-transformers' MatryoshkaLoss defaults).
 *
 * @example defaultNestingDims(100) // [8, 16, 32, 64, 100]
 */
export function defaultNestingDims(embeddingDim: number, minDim = 8): number[] {
  if (!isPositiveInteger(embeddingDim)) {
    throw new MrlError('invalid-argument', `embeddingDim must be a positive integer, got ${embeddingDim}.`);
  }
  if (!isPositiveInteger(minDim) || (minDim & (minDim - 1)) !== 0) {
    throw new MrlError('invalid-argument', `minDim must be a power of two >= 1, got ${minDim}.`);
  }
  const dims: number[] = [];
  for (let m = minDim; m < embeddingDim; m *= 2) dims.push(m);
  dims.push(embeddingDim);
  return dims;
}

/**
 * Validates and completes the nesting dims and weights.
 *
 * @example resolveNesting({ embeddingDim: 64 }) // { dims: [8, 16, 32, 64], weights: [1, 1, 1, 1] }
 */
export function resolveNesting(options: NestingOptions): Nesting {
  const { embeddingDim } = options;
  const dims = options.dims === undefined ? defaultNestingDims(embeddingDim, options.minDim) : [...options.dims];
  if (options.dims !== undefined) {
    if (!isPositiveInteger(embeddingDim)) {
      throw new MrlError('invalid-argument', `embeddingDim must be a positive integer, got ${embeddingDim}.`);
    }
    if (dims.length === 0) {
      throw new MrlError(
        'invalid-argument',
        'dims must list at least one nesting dim.',
        `Pass dims such as [8, 16, ${embeddingDim}] or leave them out for the default.`,
      );
    }
    dims.forEach((m, i) => {
      if (!Number.isInteger(m) || m < 1 || m > embeddingDim) {
        throw new MrlError(
          'invalid-argument',
          `dims[${i}] = ${m} is not an integer in [1, ${embeddingDim}] (the embedding size d).`,
          `Use nesting dims between 1 and ${embeddingDim}, or raise the embedding size.`,
        );
      }
      const previous = dims[i - 1];
      if (previous !== undefined && m === previous) {
        throw new MrlError('invalid-argument', `dims must be unique: ${m} appears twice.`);
      }
      if (previous !== undefined && m < previous) {
        throw new MrlError('invalid-argument', `dims must be sorted ascending: ${m} comes after ${previous}.`);
      }
    });
  }
  const weights = options.weights === undefined ? dims.map(() => 1) : [...options.weights];
  if (weights.length !== dims.length) {
    throw new MrlError(
      'invalid-argument',
      `weights has ${weights.length} entries but there are ${dims.length} nesting dims (${dims.join(', ')}).`,
      'Give one weight per nesting dim.',
    );
  }
  weights.forEach((w, i) => {
    if (!Number.isFinite(w) || w < 0) {
      throw new MrlError('invalid-argument', `weights[${i}] = ${w} must be a finite number >= 0.`);
    }
  });
  if (weights.every((w) => w === 0)) {
    throw new MrlError('invalid-argument', 'weights are all 0: the loss would not train anything.');
  }
  return { dims, weights };
}

/**
 * Picks `count` of the nesting dims for one step, always keeping the full dim (the last one), as
 * sentence-transformers' `n_dims_per_step`. Returns indices into `dims`, ascending.
 */
export function sampleDimIndices(dimCount: number, count: number, random: () => number): number[] {
  if (!Number.isInteger(count) || count < 1) {
    throw new MrlError('invalid-argument', `dimsPerStep must be a positive integer, got ${count}.`);
  }
  if (count >= dimCount) return Array.from({ length: dimCount }, (_, i) => i);
  const pool = Array.from({ length: dimCount - 1 }, (_, i) => i);
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const chosen = pool.slice(0, count - 1);
  chosen.push(dimCount - 1);
  return chosen.sort((a, b) => a - b);
}

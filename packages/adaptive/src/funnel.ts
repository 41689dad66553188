import { MrlError } from '@mrl/core/errors';
import { assertIntInRange } from './validate.js';

/**
 * A funnel (MRL "Adaptive Retrieval", Kusupati et al. 2022, Sec. 5.3): search the whole index at
 * `dims[0]` and keep `shortlists[0]` rows, re-rank those at `dims[1]` and keep `shortlists[1]`,
 * ..., and re-rank at the last dim to return the final `k`. So there is one shortlist size per
 * stage except the last, e.g. dims 16-32-64-128-256 over shortlists 200-100-50-25, then k = 10.
 */
export interface FunnelConfig {
  /** Prefix dims per stage, strictly increasing, each <= the index dim. */
  readonly dims: readonly number[];
  /** Rows kept after each stage but the last; non-increasing, each >= k. */
  readonly shortlists: readonly number[];
}

/**
 * Throws `invalid-argument` naming the first thing wrong with a funnel for an index of
 * dimension `indexDim` returning `k` hits.
 *
 * @example
 * ```ts
 * validateFunnel({ dims: [16, 64, 256], shortlists: [200, 50] }, 256, 10); // ok
 * validateFunnel({ dims: [64, 16], shortlists: [200] }, 256, 10); // throws: not increasing
 * ```
 */
export function validateFunnel(funnel: FunnelConfig, indexDim: number, k: number): void {
  assertIntInRange('k', k, 1);
  const { dims, shortlists } = funnel;
  if (dims.length === 0) {
    throw new MrlError('invalid-argument', 'funnel dims is empty', 'give at least one prefix dim, e.g. [16, 64, 256]');
  }
  dims.forEach((m, i) => {
    if (!Number.isInteger(m) || m < 1) {
      throw new MrlError('invalid-argument', `funnel dims[${i}] must be a positive integer, got ${String(m)}`);
    }
    if (m > indexDim) {
      throw new MrlError('invalid-argument', `funnel dims[${i}] = ${m} exceeds the index dim ${indexDim}`);
    }
    const prev = dims[i - 1];
    if (prev !== undefined && m <= prev) {
      throw new MrlError(
        'invalid-argument',
        `funnel dims must be strictly increasing: dims[${i}] = ${m} is not greater than dims[${i - 1}] = ${prev}`,
      );
    }
  });
  if (shortlists.length !== dims.length - 1) {
    throw new MrlError(
      'invalid-argument',
      `funnel needs one shortlist size per stage except the last: ${dims.length} dims need ${dims.length - 1} shortlists, got ${shortlists.length}`,
      'e.g. dims [16, 32, 64, 128, 256] with shortlists [200, 100, 50, 25]',
    );
  }
  shortlists.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 1) {
      throw new MrlError('invalid-argument', `funnel shortlists[${i}] must be a positive integer, got ${String(s)}`);
    }
    const prev = shortlists[i - 1];
    if (prev !== undefined && s > prev) {
      throw new MrlError(
        'invalid-argument',
        `funnel shortlists must be non-increasing: shortlists[${i}] = ${s} is larger than shortlists[${i - 1}] = ${prev}`,
      );
    }
    if (s < k) {
      throw new MrlError(
        'invalid-argument',
        `funnel shortlists[${i}] = ${s} is smaller than k = ${k}`,
        `raise it to at least ${k} or lower k`,
      );
    }
  });
}

/**
 * The paper's funnel shape for an index of dim `indexDim`: dims 16, 32, 64, ... doubling below
 * `indexDim`, then `indexDim`; shortlists 200, 100, 50, ... halving but never below `k`.
 *
 * @example
 * ```ts
 * defaultFunnel(256, 10); // { dims: [16, 32, 64, 128, 256], shortlists: [200, 100, 50, 25] }
 * ```
 */
export function defaultFunnel(indexDim: number, k = 10): FunnelConfig {
  assertIntInRange('indexDim', indexDim, 1);
  assertIntInRange('k', k, 1);
  const dims: number[] = [];
  for (let m = 16; m < indexDim; m *= 2) dims.push(m);
  dims.push(indexDim);
  const shortlists: number[] = [];
  let s = Math.max(200, k);
  for (let i = 0; i < dims.length - 1; i++) {
    shortlists.push(s);
    s = Math.max(k, Math.floor(s / 2));
  }
  return { dims, shortlists };
}

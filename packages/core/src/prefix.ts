import { MrlError } from './errors.js';

/** Options of {@link truncateAndNormalize}. */
export interface TruncateOptions {
  /** L2-normalise each truncated row (default true). */
  normalize?: boolean;
}

/**
 * The first `m` values of each of `rows` rows of a row-major [rows, dim] matrix, each row
 * L2-normalised on its own (what a Matryoshka prefix embedding is: Kusupati et al. 2022 compare
 * prefixes by cosine). One rule for all callers: a row whose prefix has zero norm (or a norm
 * below 1e-12) stays all zeros rather than becoming NaN, so it scores 0 against everything.
 * A non-finite value is refused, naming its row.
 *
 * @example
 * ```ts
 * const z = truncateAndNormalize(embeddings, 2, 4, 2); // [2, 2], unit rows
 * ```
 */
export function truncateAndNormalize(
  data: ArrayLike<number>,
  rows: number,
  dim: number,
  m: number,
  options: TruncateOptions = {},
): Float32Array {
  if (!Number.isInteger(rows) || rows < 0)
    throw new MrlError('invalid-argument', `rows must be an integer >= 0, got ${rows}.`);
  if (!Number.isInteger(dim) || dim < 1)
    throw new MrlError('invalid-argument', `dim must be a positive integer, got ${dim}.`);
  if (!Number.isInteger(m) || m < 1 || m > dim) {
    throw new MrlError(
      'invalid-argument',
      `prefix dim ${m} is not an integer in [1, ${dim}] (the embedding size).`,
      `Pass a dim between 1 and ${dim}.`,
    );
  }
  if (data.length !== rows * dim) {
    throw new MrlError('invalid-argument', `got ${data.length} values for ${rows} rows of ${dim} (${rows * dim}).`);
  }
  const normalize = options.normalize ?? true;
  const out = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < m; j++) {
      const x = data[r * dim + j]!;
      if (!Number.isFinite(x)) {
        throw new MrlError(
          'invalid-argument',
          `row ${r} has a non-finite value (${x}) at dim ${j}.`,
          'The model produced NaN/Inf: check its checkpoint and inputs.',
        );
      }
      sum += x * x;
    }
    const norm = Math.sqrt(sum);
    const scale = !normalize ? 1 : norm < 1e-12 ? 0 : 1 / norm;
    for (let j = 0; j < m; j++) out[r * m + j] = data[r * dim + j]! * scale;
  }
  return out;
}

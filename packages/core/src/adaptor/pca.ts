import { MrlError } from '../errors.js';
import { fitPca as fitEmbeddingPca, type Pca } from '../evaluate/pca.js';
import { checkRows, type Rows } from './rows.js';

export { symmetricEigen, type Pca } from '../evaluate/pca.js';

/**
 * PCA of adaptor rows (checked first: NaN/Inf refused with the row named), through the one PCA
 * of the library (`evaluate/pca.ts`).
 *
 * @example
 * ```ts
 * const pca = fitPca({ data, rows, dim: 64 });
 * const rotated = applyPca(pca, queries); // keep the first m columns
 * ```
 */
export function fitPca(matrix: Rows, source = 'the PCA input'): Pca {
  checkRows(matrix, source);
  return fitEmbeddingPca(matrix);
}

/**
 * Rotates rows onto the principal axes: `(e - mean) V` with `center` (default, the PCA scores),
 * `e V` without. Either way the first m columns are the rows' best m-dim linear summary.
 */
export function applyPca(pca: Pca, matrix: Rows, options: { center?: boolean } = {}): Rows {
  const d = pca.dim;
  checkRows(matrix, 'the rows to rotate');
  if (matrix.dim !== d) {
    throw new MrlError(
      'invalid-argument',
      `the PCA was fitted on ${d}-dim rows, got rows of ${matrix.dim}.`,
      'Rotate embeddings of the same model and size as those the PCA was fitted on.',
    );
  }
  const center = options.center ?? true;
  const out = new Float32Array(matrix.rows * d);
  const x = new Float64Array(d);
  const y = new Float64Array(d);
  for (let r = 0; r < matrix.rows; r++) {
    for (let j = 0; j < d; j++) x[j] = matrix.data[r * d + j]! - (center ? pca.mean[j]! : 0);
    y.fill(0);
    for (let k = 0; k < d; k++) {
      const xk = x[k]!;
      const row = k * d;
      for (let j = 0; j < d; j++) y[j]! += xk * pca.directions[row + j]!;
    }
    for (let j = 0; j < d; j++) out[r * d + j] = y[j]!;
  }
  return { data: out, rows: matrix.rows, dim: d };
}

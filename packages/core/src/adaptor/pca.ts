import { MrlError } from '../errors.js';
import { checkRows, type Rows } from './rows.js';

/** Principal axes of a set of embeddings, largest variance first. */
export interface Pca {
  dim: number;
  /** Mean of the fitted rows [d]. */
  mean: Float64Array;
  /** Principal directions as the columns of an orthogonal [d, d] matrix, row-major. */
  components: Float64Array;
  /** Variance along each direction, descending [d]. */
  variances: Float64Array;
}

/**
 * Eigen-decomposition of a symmetric [n, n] matrix by cyclic Jacobi rotations (float64). Returns
 * the eigenvalues and the eigenvectors as columns, unsorted. O(n^3) per sweep; fine for the
 * embedding sizes adaptors see (n up to a few hundred).
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i]! * a[i]!;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        // Rotation in the (p, q) plane that zeroes a[p][q] (the smaller of the two angles).
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

/**
 * PCA of embeddings [N, d]: the eigenvectors of their covariance, sorted by variance. Rotating
 * onto them and truncating is the classic way to shorten embeddings of a model trained without
 * MRL, and the baseline an adaptor has to beat.
 *
 * @example
 * ```ts
 * const pca = fitPca({ data, rows, dim: 64 });
 * const rotated = applyPca(pca, queries); // keep the first m columns
 * ```
 */
export function fitPca(matrix: Rows, source = 'the PCA input'): Pca {
  checkRows(matrix, source);
  const { data, rows, dim: d } = matrix;
  const mean = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mean[j]! += data[r * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= rows;
  const cov = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) x[j] = data[r * d + j]! - mean[j]!;
    for (let i = 0; i < d; i++) {
      const xi = x[i]!;
      for (let j = i; j < d; j++) cov[i * d + j]! += xi * x[j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const value = cov[i * d + j]! / Math.max(1, rows - 1);
      cov[i * d + j] = value;
      cov[j * d + i] = value;
    }
  }
  const { values, vectors } = symmetricEigen(cov, d);
  const order = Array.from({ length: d }, (_, i) => i).sort((a, b) => values[b]! - values[a]!);
  const components = new Float64Array(d * d);
  const variances = new Float64Array(d);
  order.forEach((from, to) => {
    variances[to] = values[from]!;
    for (let k = 0; k < d; k++) components[k * d + to] = vectors[k * d + from]!;
  });
  return { dim: d, mean, components, variances };
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
      for (let j = 0; j < d; j++) y[j]! += xk * pca.components[row + j]!;
    }
    for (let j = 0; j < d; j++) out[r * d + j] = y[j]!;
  }
  return { data: out, rows: matrix.rows, dim: d };
}

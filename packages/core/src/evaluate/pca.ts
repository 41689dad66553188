import { MrlError } from '../errors.js';
import type { EmbeddingMatrix } from './embeddings.js';

/** Principal directions of a set of embeddings, sorted by explained variance (largest first). */
export interface Pca {
  mean: Float64Array;
  /** Eigenvalues of the covariance, descending. */
  variances: Float64Array;
  /** Row-major [dim, dim]: column j is the j-th principal direction. */
  directions: Float64Array;
  dim: number;
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan,
 * "Matrix Computations", 8.5). Exact to float64 rounding for the d <= 2048 covariances used here.
 * Returns eigenvalues (unsorted) and the eigenvectors as the columns of a row-major matrix.
 */
export function symmetricEigen(
  matrix: Float64Array,
  n: number,
  maxSweeps = 50,
): { values: Float64Array; vectors: Float64Array } {
  if (matrix.length !== n * n)
    throw new MrlError('invalid-argument', `symmetricEigen: ${matrix.length} values for a ${n}x${n} matrix.`);
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i]! * a[i]!;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-24 * scale || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // Rotate columns p and q, then rows p and q (A <- J^T A J).
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
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]!), vectors: v };
}

/** PCA of the rows of `embeddings`: eigen-decomposition of their d x d covariance. */
export function fitPca(embeddings: EmbeddingMatrix): Pca {
  const { rows, dim, data } = embeddings;
  if (rows < 2) throw new MrlError('invalid-argument', `PCA needs at least 2 embeddings, got ${rows}.`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) mean[j]! += data[r * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= rows;
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) centred[j] = data[r * dim + j]! - mean[j]!;
    for (let i = 0; i < dim; i++) {
      const ci = centred[i]!;
      if (ci === 0) continue;
      for (let j = i; j < dim; j++) cov[i * dim + j]! += ci * centred[j]!;
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const value = cov[i * dim + j]! / (rows - 1);
      cov[i * dim + j] = value;
      cov[j * dim + i] = value;
    }
  }
  const { values, vectors } = symmetricEigen(cov, dim);
  const order = Array.from({ length: dim }, (_, i) => i).sort((x, y) => values[y]! - values[x]!);
  const directions = new Float64Array(dim * dim);
  for (let k = 0; k < dim; k++) for (let j = 0; j < dim; j++) directions[k * dim + j] = vectors[k * dim + order[j]!]!;
  return { mean, variances: Float64Array.from(order, (i) => values[i]!), directions, dim };
}

/**
 * Projects embeddings on the principal directions: column j of the result is the coordinate on
 * the j-th direction, so its first m columns are the top-m SVD projection (the paper's SVD
 * baseline for target size m).
 */
export function projectPca(pca: Pca, embeddings: EmbeddingMatrix): EmbeddingMatrix {
  const { dim } = pca;
  if (embeddings.dim !== dim)
    throw new MrlError('invalid-argument', `PCA was fitted on ${dim}-d embeddings, got ${embeddings.dim}-d.`);
  const out = new Float32Array(embeddings.rows * dim);
  const centred = new Float64Array(dim);
  for (let r = 0; r < embeddings.rows; r++) {
    for (let k = 0; k < dim; k++) centred[k] = embeddings.data[r * dim + k]! - pca.mean[k]!;
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += centred[k]! * pca.directions[k * dim + j]!;
      out[r * dim + j] = s;
    }
  }
  return { data: out, rows: embeddings.rows, dim };
}

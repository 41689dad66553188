import { MrlError } from '../errors.js';

/** Row-major vectors [rows, dim] in one contiguous buffer (the layout of `EmbeddingMatrix`). */
export interface Rows {
  data: Float32Array;
  rows: number;
  dim: number;
}

/**
 * Checks that `data` holds `rows` x `dim` finite values; `source` names the file or argument in
 * the message, and the first bad row and column are named.
 *
 * @example checkRows({ data, rows: 100, dim: 64 }, 'corpus.npy');
 */
export function checkRows(matrix: Rows, source: string): void {
  const { data, rows, dim } = matrix;
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(dim) || dim < 1) {
    throw new MrlError(
      'invalid-argument',
      `${source} must hold at least one row of at least one value, got ${rows} rows of ${dim}.`,
      'Pass a 2-D [N, d] float32 array of embeddings.',
    );
  }
  if (data.length !== rows * dim) {
    throw new MrlError(
      'invalid-argument',
      `${source} has ${data.length} values, not ${rows} rows x ${dim} = ${rows * dim}.`,
      'Pass a 2-D [N, d] float32 array of embeddings.',
    );
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new MrlError(
        'invalid-argument',
        `${source} row ${Math.floor(i / dim)} column ${i % dim} is ${data[i]}; embeddings must be finite.`,
        'Remove or re-embed that row; NaN/Inf usually come from a diverged model or a corrupt file.',
      );
    }
  }
}

/** The rows at `indices`, copied into a new matrix. */
export function selectRows(matrix: Rows, indices: ArrayLike<number>): Rows {
  const out = new Float32Array(indices.length * matrix.dim);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i]!;
    out.set(matrix.data.subarray(r * matrix.dim, (r + 1) * matrix.dim), i * matrix.dim);
  }
  return { data: out, rows: indices.length, dim: matrix.dim };
}

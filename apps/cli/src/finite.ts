import { MrlError } from '@mrl/core';

/**
 * Refuses NaN and +-Inf in a row-major matrix of `rows` x `dim` values, naming the file, the row
 * and the column: a NaN query would otherwise rank every row alike and return row 0 k times.
 */
export function assertFiniteRows(data: Float32Array, rows: number, dim: number, source: string, what: string): void {
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) {
      const v = data[r * dim + j]!;
      if (!Number.isFinite(v)) {
        throw new MrlError(
          'non-finite-value',
          `${source}: ${what} row ${r} holds ${v} at dim ${j}; a search with it would rank every candidate alike.`,
          `Embed the ${what === 'query' ? 'queries' : 'rows'} again with mrl-cli embed, or drop row ${r}.`,
        );
      }
    }
  }
}

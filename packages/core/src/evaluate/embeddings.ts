import * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../encoder.js';

/** Row-major embeddings [rows, dim] in one contiguous buffer. */
export interface EmbeddingMatrix {
  data: Float32Array;
  rows: number;
  dim: number;
}

/**
 * Runs the encoder in inference mode over `size` examples in batches and collects the
 * embeddings. `input` builds the encoder input for a range of example indices.
 */
export async function embedDataset<Input>(
  encoder: Encoder<Input>,
  size: number,
  input: (indices: Int32Array) => Input | Promise<Input>,
  options: { batchSize?: number; dispose?: (input: Input) => void } = {},
): Promise<EmbeddingMatrix> {
  const batchSize = options.batchSize ?? 512;
  const dim = encoder.embeddingDim;
  const data = new Float32Array(size * dim);
  for (let start = 0; start < size; start += batchSize) {
    const count = Math.min(batchSize, size - start);
    const indices = Int32Array.from({ length: count }, (_, i) => start + i);
    const batch = await input(indices);
    const embedding = encoder.encode(batch, false);
    data.set(await embedding.data(), start * dim);
    embedding.dispose();
    if (options.dispose !== undefined) options.dispose(batch);
    else tf.dispose(batch as unknown as tf.TensorContainer);
  }
  return { data, rows: size, dim };
}

/** The first `m` columns of every row, copied into a new matrix. */
export function prefixOf(matrix: EmbeddingMatrix, m: number): EmbeddingMatrix {
  const out = new Float32Array(matrix.rows * m);
  for (let r = 0; r < matrix.rows; r++) out.set(matrix.data.subarray(r * matrix.dim, r * matrix.dim + m), r * m);
  return { data: out, rows: matrix.rows, dim: m };
}

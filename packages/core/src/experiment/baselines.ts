import * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../encoder.js';
import type { EmbeddingMatrix } from '../evaluate/embeddings.js';
import { fitPca, projectPca, type Pca } from '../evaluate/pca.js';

/**
 * PCA (the SVD baseline) fitted on at most `maxRows` of the reference rows (default 20,000),
 * then applied to each matrix given: column m of the result is the m-th principal component,
 * so its first m columns are the best m-dim linear summary of the model without MRL.
 */
export function pcaProject(
  fitOn: EmbeddingMatrix,
  matrices: readonly EmbeddingMatrix[],
  maxRows = 20_000,
): EmbeddingMatrix[] {
  const rows = Math.min(fitOn.rows, maxRows);
  const pca: Pca = fitPca({ data: fitOn.data.subarray(0, rows * fitOn.dim), rows, dim: fitOn.dim });
  return matrices.map((m) => projectPca(pca, m));
}

/** An encoder without weights that passes fixed features through: heads trained on SVD or first-m features. */
export function featureEncoder(dim: number): Encoder<tf.Tensor> {
  return {
    config: { architecture: 'features', embeddingDim: dim },
    embeddingDim: dim,
    encode: (input) => tf.reshape(input, [input.shape[0]!, dim]) as tf.Tensor2D,
    variables: () => new Map(),
    dispose: () => undefined,
  };
}

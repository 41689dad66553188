import { fitPca, projectPca, type EmbeddingMatrix, type Pca } from '@mrl/core';

/**
 * Baselines a text run can train beside the Matryoshka model, by the same code (the names are
 * vision's): `ff`: a model per dim (the BERT plus a linear layer to m dims, trained for m alone;
 * at d it is the model trained without MRL); `svd`: that d-dim model's embedding projected on its
 * top-m principal directions (PCA); `rand`: the first m dims of the same model (truncation of a
 * model trained without MRL).
 */
export const TEXT_BASELINES = ['ff', 'svd', 'rand'] as const;
export type TextBaseline = (typeof TEXT_BASELINES)[number];

/** The label of each model a run trains: `mrl`, or `ff-<m>` (`ff-<d>` is the model without MRL). */
export function modelLabels(dims: readonly number[], compare: readonly TextBaseline[]): string[] {
  const d = dims[dims.length - 1]!;
  const labels = ['mrl'];
  if (compare.includes('ff')) labels.push(...dims.map((m) => `ff-${m}`));
  else if (compare.includes('svd') || compare.includes('rand')) labels.push(`ff-${d}`);
  return labels;
}

/** PCA fitted on (at most 20,000 of) the reference rows, then applied to each matrix given. */
export function pcaProject(fitOn: EmbeddingMatrix, ...matrices: EmbeddingMatrix[]): EmbeddingMatrix[] {
  const rows = Math.min(fitOn.rows, 20_000);
  const pca: Pca = fitPca({ data: fitOn.data.subarray(0, rows * fitOn.dim), rows, dim: fitOn.dim });
  return matrices.map((m) => projectPca(pca, m));
}

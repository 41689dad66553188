import { BASELINES, pcaProject as corePcaProject, runPlan, type Baseline, type EmbeddingMatrix } from '@mrl/core';

/**
 * Baselines a text run can train beside the Matryoshka model, by the same code (core's
 * {@link BASELINES}, the names vision uses): `ff`: a model per dim (the BERT plus a linear layer
 * to m dims, trained for m alone; at d it is the model trained without MRL); `svd`: that d-dim
 * model's embedding projected on its top-m principal directions (PCA); `rand`: the first m dims
 * of the same model (truncation of a model trained without MRL); `untrained`: the BERT at its
 * random initialisation (the Matryoshka model's: same seed, same tokenizer), never trained, scored
 * per prefix (random features; no model to train, so it adds nothing to {@link modelLabels}).
 */
export const TEXT_BASELINES = BASELINES;
export type TextBaseline = Baseline;

/** The label of each model a run trains: `mrl`, or `ff-<m>` (`ff-<d>` is the model without MRL). */
export function modelLabels(dims: readonly number[], compare: readonly TextBaseline[]): string[] {
  return runPlan(dims, compare).labels;
}

/** PCA fitted on (at most 20,000 of) the reference rows, then applied to each matrix given. */
export function pcaProject(fitOn: EmbeddingMatrix, ...matrices: EmbeddingMatrix[]): EmbeddingMatrix[] {
  return corePcaProject(fitOn, matrices);
}

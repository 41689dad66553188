import { MrlError } from '../errors.js';

/**
 * Baselines a run can train beside the Matryoshka model, by the same code, in every modality:
 * `ff`: an independent model per dim (at d it is the model trained without MRL); `svd`: that
 * d-dim model's embedding projected on its top-m principal directions (PCA); `rand`: the first m
 * dims of the same model (truncation of a model trained without MRL); `untrained`: the encoder at
 * its random initialisation (the Matryoshka model's, same seed), not trained: random features.
 */
export const BASELINES = ['ff', 'svd', 'rand', 'untrained'] as const;
export type Baseline = (typeof BASELINES)[number];

/** Refuses a baseline name that is not one of {@link BASELINES}. */
export function checkBaselines(compare: readonly string[]): asserts compare is readonly Baseline[] {
  for (const c of compare) {
    if (!(BASELINES as readonly string[]).includes(c)) {
      throw new MrlError(
        'invalid-config',
        `unknown baseline '${String(c)}'.`,
        `Known baselines: ${BASELINES.join(', ')}.`,
      );
    }
  }
}

/** The models one run trains, in order. */
export interface RunPlan {
  /** Every model's label: `mrl`, then `ff-<m>` in nesting order. */
  labels: string[];
  /** Dims with an FF model in the table. */
  ffDims: number[];
  /** Whether the d-dim model without MRL (`ff-<d>`) is trained: for FF at d, SVD or truncation. */
  full: boolean;
}

/**
 * The run plan of a Matryoshka run and its baselines: `mrl`, an FF model per dim (all nesting
 * dims, or `ffDims`), and `ff-<d>` when SVD or truncation need it and FF does not train it.
 *
 * @example
 * ```ts
 * runPlan([8, 16, 32], ['svd']).labels; // ['mrl', 'ff-32']
 * ```
 */
export function runPlan(dims: readonly number[], compare: readonly Baseline[], ffDims?: readonly number[]): RunPlan {
  const d = dims[dims.length - 1]!;
  const ff = compare.includes('ff') ? dims.filter((m) => ffDims === undefined || ffDims.includes(m)) : [];
  const needsFull = compare.includes('svd') || compare.includes('rand');
  const trained = needsFull && !ff.includes(d) ? [...ff, d] : ff;
  return { labels: ['mrl', ...trained.map((m) => `ff-${m}`)], ffDims: ff, full: needsFull || ff.includes(d) };
}

/** The dim of a plan label: d for `mrl`, m for `ff-<m>`. */
export function labelDim(label: string, d: number): number {
  return label === 'mrl' ? d : Number(label.slice('ff-'.length));
}

/**
 * Checks `trainOnly` (models of a run split over processes) against the plan's models:
 * every name must be `mrl` or `ff-<m>` of a nesting dim.
 */
export function checkTrainOnly(trainOnly: readonly string[], dims: readonly number[]): void {
  const known = ['mrl', ...dims.map((m) => `ff-${m}`)];
  for (const label of trainOnly) {
    if (!known.includes(label))
      throw new MrlError(
        'invalid-argument',
        `trainOnly names '${label}', which this run does not train.`,
        `Known models: ${known.join(', ')}.`,
      );
  }
}

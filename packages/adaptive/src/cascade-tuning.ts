import { MrlError } from '@mrl/core/errors';
import {
  cascadeStages,
  evaluateCascade,
  type CascadeEvaluation,
  type CascadeInput,
  type CascadeOptions,
} from './cascade.js';

/*
 * Threshold tuning: GREEDY, smallest dim first, with an exact sweep (no quantile grid).
 *
 * For stage s (with stages < s fixed and every later stage provisionally passing everything on
 * to the last dim), the examples still running are sorted by their stage-s confidence. Letting
 * the top j of them stop at s gives validation accuracy
 *   (correct among already stopped) + (stage-s correct among the top j) + (last-dim correct among the rest),
 * which a single pass evaluates for every j at once (prefix sums). We take the largest j (the
 * most early exits) whose accuracy still meets the target, considering only j at boundaries
 * between distinct confidence values so that "confidence >= threshold" selects exactly those j.
 *
 * Why greedy rather than a grid over quantiles: a grid is exponential in the number of dims
 * (q^(k-1) cascades to evaluate) while this is O(k n log n); spending the accuracy budget at
 * the smallest dim first is also where an early exit saves the most dims. Because every step
 * re-checks the full cascade accuracy, the final thresholds meet the target on the validation
 * set whenever the last dim alone does. They are not guaranteed optimal (a later stage might
 * have used the budget better), and like any tuned threshold they can overfit a small split.
 */

/** What the tuned cascade must reach on the validation split. */
export type CascadeTarget =
  /** Absolute accuracy in [0, 1]. */
  | { readonly targetAccuracy: number }
  /** Allowed drop below the accuracy of the last (largest) dim alone, in [0, 1]. */
  | { readonly maxAccuracyDrop: number };

/** Tuned thresholds and how they do on the validation split. */
export interface TunedCascade {
  /** One per dim except the last; Infinity means "never stop at this dim". */
  readonly thresholds: number[];
  /** The accuracy the thresholds had to reach. */
  readonly targetAccuracy: number;
  /** False when even the last dim alone is below the target (then every threshold is Infinity). */
  readonly met: boolean;
  readonly validation: CascadeEvaluation;
}

function resolveTarget(target: CascadeTarget, lastDimAccuracy: number): number {
  const hasAbs = 'targetAccuracy' in target;
  const hasDrop = 'maxAccuracyDrop' in target;
  if (hasAbs === hasDrop) {
    throw new MrlError(
      'invalid-argument',
      'give exactly one of targetAccuracy and maxAccuracyDrop',
      'e.g. { maxAccuracyDrop: 0.01 }',
    );
  }
  if ('targetAccuracy' in target) {
    const t = target.targetAccuracy;
    if (!(t >= 0 && t <= 1))
      throw new MrlError('invalid-argument', `targetAccuracy must be in [0, 1], got ${String(t)}`);
    return t;
  }
  const drop = target.maxAccuracyDrop;
  if (!(drop >= 0 && drop <= 1))
    throw new MrlError('invalid-argument', `maxAccuracyDrop must be in [0, 1], got ${String(drop)}`);
  return Math.max(0, lastDimAccuracy - drop);
}

/**
 * Picks per-dim confidence thresholds on a validation split that minimise the dims spent while
 * keeping accuracy at or above a target (greedy, smallest dim first; see the note in
 * cascade-tuning.ts).
 *
 * @example
 * ```ts
 * const tuned = tuneCascadeThresholds(valInput, valLabels, { maxAccuracyDrop: 0.01 });
 * evaluateCascade(testInput, testLabels, tuned.thresholds).expectedDim;
 * ```
 */
export function tuneCascadeThresholds(
  validation: CascadeInput,
  labels: Int32Array | readonly number[],
  target: CascadeTarget,
  options: CascadeOptions = {},
): TunedCascade {
  const st = cascadeStages(validation, options);
  const n = st.numExamples;
  if (labels.length !== n)
    throw new MrlError('invalid-argument', `labels has ${labels.length} entries for ${n} examples`);
  const k = st.dims.length;
  const last = st.predictions[k - 1] as Int32Array;
  const lastCorrect = new Uint8Array(n);
  let lastTotal = 0;
  for (let i = 0; i < n; i++) {
    lastCorrect[i] = last[i] === labels[i] ? 1 : 0;
    lastTotal += lastCorrect[i] as number;
  }
  const targetAccuracy = resolveTarget(target, lastTotal / n);
  // Compare counts, with slack for the float in target * n.
  const needed = targetAccuracy * n - 1e-9;
  const thresholds: number[] = new Array<number>(k - 1).fill(Infinity);
  if (lastTotal < needed) {
    return { thresholds, targetAccuracy, met: false, validation: evaluateCascade(st, labels, thresholds) };
  }

  const running: number[] = Array.from({ length: n }, (_, i) => i);
  let stoppedCorrect = 0;
  for (let s = 0; s < k - 1; s++) {
    const conf = st.confidence[s] as Float64Array;
    const pred = st.predictions[s] as Int32Array;
    running.sort((a, b) => (conf[b] as number) - (conf[a] as number) || a - b);
    let restLast = 0;
    for (const i of running) restLast += lastCorrect[i] as number;
    let topCorrect = 0;
    let topLast = 0;
    let bestJ = 0;
    for (let j = 0; j < running.length; j++) {
      const i = running[j] as number;
      topCorrect += pred[i] === labels[i] ? 1 : 0;
      topLast += lastCorrect[i] as number;
      const next = running[j + 1];
      if (next !== undefined && conf[next] === conf[i]) continue;
      if (stoppedCorrect + topCorrect + (restLast - topLast) >= needed) bestJ = j + 1;
    }
    if (bestJ > 0) {
      thresholds[s] = conf[running[bestJ - 1] as number] as number;
      for (const i of running.slice(0, bestJ)) stoppedCorrect += pred[i] === labels[i] ? 1 : 0;
      running.splice(0, bestJ);
    }
  }
  return { thresholds, targetAccuracy, met: true, validation: evaluateCascade(st, labels, thresholds) };
}

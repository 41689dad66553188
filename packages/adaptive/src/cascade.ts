import { MrlError } from '@mrl/core/errors';
import { predictionConfidence, type ConfidenceMeasure, type ScoreKind } from './confidence.js';
import { assertIntInRange } from './validate.js';

/**
 * Class scores of the same examples from nested prefixes m1 < m2 < ... < mk of one
 * Matryoshka embedding (e.g. the logits of an MRL head at each nesting dim).
 */
export interface CascadeInput {
  /** Nesting dims, strictly increasing. */
  readonly dims: readonly number[];
  /** One [numExamples, numClasses] row-major score matrix per dim. */
  readonly scores: readonly Float32Array[];
  readonly numClasses: number;
}

/** How confidence is read from the scores. */
export interface CascadeOptions {
  /** Default 'max-prob'. */
  readonly confidence?: ConfidenceMeasure;
  /** Default 'logits'. */
  readonly scoreKind?: ScoreKind;
}

/** Per-dim predictions and confidences, computed once and shared by run, evaluate and tune. */
export interface CascadeStages {
  readonly numExamples: number;
  readonly dims: readonly number[];
  readonly predictions: readonly Int32Array[];
  readonly confidence: readonly Float64Array[];
}

/** Where each example stopped and what it predicted there. */
export interface CascadeRun {
  readonly predictions: Int32Array;
  /** Index into `dims` of the stage that answered. */
  readonly stopStage: Int32Array;
  /** The dim that answered. */
  readonly stopDim: Int32Array;
}

/** Quality and cost of a cascade on labelled examples. */
export interface CascadeEvaluation {
  readonly numExamples: number;
  readonly accuracy: number;
  /** Mean over examples of the dim at which each stopped. */
  readonly expectedDim: number;
  /** How many examples stopped at each dim. */
  readonly histogram: readonly { readonly dim: number; readonly count: number; readonly fraction: number }[];
  /** Accuracy of each dim alone, for reference. */
  readonly accuracyPerDim: readonly number[];
}

/**
 * Validates a cascade input and computes each dim's predictions and confidences.
 *
 * @example
 * ```ts
 * const stages = cascadeStages({ dims: [8, 64], scores: [logits8, logits64], numClasses: 10 });
 * ```
 */
export function cascadeStages(input: CascadeInput, options: CascadeOptions = {}): CascadeStages {
  const { dims, scores, numClasses } = input;
  assertIntInRange('numClasses', numClasses, 2);
  if (dims.length === 0)
    throw new MrlError('invalid-argument', 'cascade dims is empty', 'give at least one nesting dim');
  if (scores.length !== dims.length) {
    throw new MrlError('invalid-argument', `cascade has ${dims.length} dims but ${scores.length} score matrices`);
  }
  dims.forEach((m, i) => {
    assertIntInRange(`cascade dims[${i}]`, m, 1);
    const prev = dims[i - 1];
    if (prev !== undefined && m <= prev) {
      throw new MrlError(
        'invalid-argument',
        `cascade dims must be strictly increasing: dims[${i}] = ${m} is not greater than dims[${i - 1}] = ${prev}`,
      );
    }
  });
  const per = scores.map((s, i) => {
    if (!(s instanceof Float32Array))
      throw new MrlError('invalid-argument', `cascade scores[${i}] must be a Float32Array`);
    return predictionConfidence(s, numClasses, options.confidence ?? 'max-prob', options.scoreKind ?? 'logits');
  });
  const n = (per[0] as { predictions: Int32Array }).predictions.length;
  per.forEach((p, i) => {
    if (p.predictions.length !== n) {
      throw new MrlError(
        'invalid-argument',
        `cascade scores[${i}] has ${p.predictions.length} examples, scores[0] has ${n}`,
      );
    }
  });
  return { numExamples: n, dims, predictions: per.map((p) => p.predictions), confidence: per.map((p) => p.confidence) };
}

function checkThresholds(thresholds: readonly number[], stages: number): void {
  if (thresholds.length !== stages - 1) {
    throw new MrlError(
      'invalid-argument',
      `a cascade over ${stages} dims takes ${stages - 1} thresholds (the last dim always answers), got ${thresholds.length}`,
    );
  }
  thresholds.forEach((t, i) => {
    if (Number.isNaN(t) || t < 0) {
      throw new MrlError(
        'invalid-argument',
        `cascade thresholds[${i}] must be >= 0 (Infinity never stops there), got ${String(t)}`,
      );
    }
  });
}

function checkLabels(labels: Int32Array | readonly number[], n: number): void {
  if (labels.length !== n)
    throw new MrlError('invalid-argument', `labels has ${labels.length} entries for ${n} examples`);
}

function isStages(x: CascadeInput | CascadeStages): x is CascadeStages {
  return 'confidence' in x;
}

/**
 * Classifies each example with the smallest dim whose confidence reaches that dim's threshold:
 * stage s answers when confidence >= thresholds[s]; otherwise the example moves to the next dim,
 * and the last dim always answers. A threshold of 0 stops everything at that dim; a threshold
 * of 1 passes on every example whose confidence is below 1 (a fully saturated softmax can reach
 * exactly 1; use Infinity to pass on everything).
 * Reference: Kusupati et al. 2022, Sec. 5.2 (adaptive classification).
 *
 * @example
 * ```ts
 * const run = runCascade({ dims: [8, 64], scores: [l8, l64], numClasses: 10 }, [0.9]);
 * run.stopDim; // 8 or 64 per example
 * ```
 */
export function runCascade(
  input: CascadeInput | CascadeStages,
  thresholds: readonly number[],
  options: CascadeOptions = {},
): CascadeRun {
  const st = isStages(input) ? input : cascadeStages(input, options);
  const k = st.dims.length;
  checkThresholds(thresholds, k);
  const n = st.numExamples;
  const predictions = new Int32Array(n);
  const stopStage = new Int32Array(n);
  const stopDim = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    while (s < k - 1 && !(((st.confidence[s] as Float64Array)[i] as number) >= (thresholds[s] as number))) s++;
    predictions[i] = (st.predictions[s] as Int32Array)[i] as number;
    stopStage[i] = s;
    stopDim[i] = st.dims[s] as number;
  }
  return { predictions, stopStage, stopDim };
}

/**
 * Runs the cascade and reports accuracy, expected dims per example and the stopping histogram.
 *
 * @example
 * ```ts
 * const ev = evaluateCascade(testInput, testLabels, tuned.thresholds);
 * console.log(ev.accuracy, ev.expectedDim, ev.histogram);
 * ```
 */
export function evaluateCascade(
  input: CascadeInput | CascadeStages,
  labels: Int32Array | readonly number[],
  thresholds: readonly number[],
  options: CascadeOptions = {},
): CascadeEvaluation {
  const st = isStages(input) ? input : cascadeStages(input, options);
  const n = st.numExamples;
  checkLabels(labels, n);
  const run = runCascade(st, thresholds);
  let correct = 0;
  let dimSum = 0;
  const counts = new Array<number>(st.dims.length).fill(0);
  for (let i = 0; i < n; i++) {
    if (run.predictions[i] === labels[i]) correct++;
    dimSum += run.stopDim[i] as number;
    const s = run.stopStage[i] as number;
    counts[s] = (counts[s] as number) + 1;
  }
  const accuracyPerDim = st.predictions.map((p) => {
    let c = 0;
    for (let i = 0; i < n; i++) if (p[i] === labels[i]) c++;
    return c / n;
  });
  return {
    numExamples: n,
    accuracy: correct / n,
    expectedDim: dimSum / n,
    histogram: st.dims.map((dim, s) => ({ dim, count: counts[s] as number, fraction: (counts[s] as number) / n })),
    accuracyPerDim,
  };
}

import { MrlError } from '@mrl/core/errors';
import { assertIntInRange, rowCount } from './validate.js';

/** How sure a classifier is: the top class probability, or the gap between the top two. */
export type ConfidenceMeasure = 'max-prob' | 'margin';
/** Whether per-class scores are raw logits (softmax applied here) or probabilities already. */
export type ScoreKind = 'logits' | 'probabilities';

/** Predicted class and its confidence for each example. */
export interface Confidences {
  readonly predictions: Int32Array;
  /** In [0, 1] for both measures. */
  readonly confidence: Float64Array;
}

/**
 * Argmax class (ties: lowest class index) and confidence of each row of a [n, numClasses]
 * score matrix. Softmax is computed stably (max-subtracted) in float64.
 *
 * @example
 * ```ts
 * predictionConfidence(new Float32Array([2, 0, 0]), 3, 'margin', 'logits');
 * // predictions [0], confidence [~0.64]
 * ```
 */
export function predictionConfidence(
  scores: Float32Array,
  numClasses: number,
  measure: ConfidenceMeasure = 'max-prob',
  kind: ScoreKind = 'logits',
): Confidences {
  assertIntInRange('numClasses', numClasses, 2);
  if (measure !== 'max-prob' && measure !== 'margin') {
    throw new MrlError(
      'invalid-argument',
      `confidence measure must be 'max-prob' or 'margin', got '${String(measure)}'`,
    );
  }
  if (kind !== 'logits' && kind !== 'probabilities') {
    throw new MrlError('invalid-argument', `score kind must be 'logits' or 'probabilities', got '${String(kind)}'`);
  }
  const n = rowCount('class scores', scores, numClasses);
  const predictions = new Int32Array(n);
  const confidence = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * numClasses;
    let best = 0;
    let top1 = -Infinity;
    let top2 = -Infinity;
    for (let c = 0; c < numClasses; c++) {
      const v = scores[base + c] as number;
      if (Number.isNaN(v)) {
        throw new MrlError('invalid-argument', `class scores of example ${i} contain NaN (class ${c})`);
      }
      if (v > top1) {
        top2 = top1;
        top1 = v;
        best = c;
      } else if (v > top2) {
        top2 = v;
      }
    }
    predictions[i] = best;
    let p1: number;
    let p2: number;
    if (kind === 'probabilities') {
      p1 = top1;
      p2 = top2;
    } else {
      let sum = 0;
      for (let c = 0; c < numClasses; c++) sum += Math.exp((scores[base + c] as number) - top1);
      p1 = 1 / sum;
      p2 = Math.exp(top2 - top1) / sum;
    }
    confidence[i] = measure === 'max-prob' ? p1 : p1 - p2;
  }
  return { predictions, confidence };
}

import { MrlError } from '@mrl/core';

/** What the checks read of a split. */
interface SplitLike {
  count: number;
  labels: Int32Array;
  exampleShape?: readonly number[];
}

/**
 * Train and test examples must have one shape: a model trained on 32x32 images cannot be tested
 * on 28x28 ones, and silently reshaping would report numbers that mean nothing.
 */
export function checkSameShape(train: readonly number[], test: readonly number[], source: string): void {
  if (train.length !== test.length || train.some((n, i) => n !== test[i])) {
    throw new MrlError(
      'invalid-argument',
      `${source}: the training examples are [${train.join(', ')}] but the test examples are [${test.join(', ')}].`,
      'Use train and test files of one image size (re-export them at one size).',
    );
  }
}

/**
 * Warnings for data a run can train on but whose numbers would mislead: an empty split, a single
 * class (every top-1 is 100%), labels that occur only in the test split (no model can predict
 * them). One line each, for the run's log.
 *
 * @example degenerateDataWarnings({ count: 4, labels: Int32Array.of(1, 1, 1, 1) }, test) // ['the training data has one class ...']
 */
export function degenerateDataWarnings(train: SplitLike, test: SplitLike): string[] {
  const out: string[] = [];
  if (test.count === 0) out.push('the test split is empty: every accuracy would be 0/0.');
  const seen = new Set(train.labels.subarray(0, train.count));
  if (seen.size === 1)
    out.push(
      `the training data has one class (label ${[...seen][0]}): a classifier can only ever predict it, so top-1 accuracy means nothing.`,
    );
  const unseen = [...new Set(test.labels.subarray(0, test.count))].filter((l) => !seen.has(l)).sort((a, b) => a - b);
  if (unseen.length > 0)
    out.push(
      `test label${unseen.length === 1 ? '' : 's'} ${unseen.join(', ')} never occur${unseen.length === 1 ? 's' : ''} in the training data: no model can predict ${unseen.length === 1 ? 'it' : 'them'} (raise --train-limit?).`,
    );
  return out;
}

import { describe, expect, it } from 'vitest';
import { MrlError } from '@mrl/core';
import { checkSameShape, degenerateDataWarnings } from '../src/data-checks.js';

const split = (labels: number[]): { count: number; labels: Int32Array } => ({
  count: labels.length,
  labels: Int32Array.from(labels),
});

describe('degenerateDataWarnings', () => {
  it('says nothing for ordinary data', () => {
    expect(degenerateDataWarnings(split([0, 1, 2, 1]), split([2, 0]))).toEqual([]);
  });

  it('warns about one class, labels only in test, and an empty test split', () => {
    expect(degenerateDataWarnings(split([3, 3, 3]), split([3, 9, 7, 9]))).toEqual([
      'the training data has one class (label 3): a classifier can only ever predict it, so top-1 accuracy means nothing.',
      'test labels 7, 9 never occur in the training data: no model can predict them (raise --train-limit?).',
    ]);
    expect(degenerateDataWarnings(split([0, 1]), split([2]))).toEqual([
      'test label 2 never occurs in the training data: no model can predict it (raise --train-limit?).',
    ]);
    expect(degenerateDataWarnings(split([0, 1]), split([]))).toEqual([
      'the test split is empty: every accuracy would be 0/0.',
    ]);
  });

  it('reads only the first `count` labels', () => {
    expect(degenerateDataWarnings({ count: 2, labels: Int32Array.from([1, 2, 5]) }, split([1]))).toEqual([]);
  });
});

describe('checkSameShape', () => {
  it('accepts one shape and refuses two, naming both', () => {
    expect(() => checkSameShape([28, 28, 1], [28, 28, 1], 'data')).not.toThrow();
    let thrown: unknown;
    try {
      checkSameShape([32, 32, 1], [28, 28, 1], '/data/mixed');
    } catch (e) {
      thrown = e;
    }
    expect(MrlError.is(thrown)).toBe(true);
    expect((thrown as MrlError).message).toBe(
      '/data/mixed: the training examples are [32, 32, 1] but the test examples are [28, 28, 1].',
    );
  });
});

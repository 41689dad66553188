import { describe, expect, it } from 'vitest';
import { defaultFunnel, validateFunnel } from '../src/funnel.js';
import { MrlError } from '@mrl/core/errors';

function message(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect(MrlError.is(e) && e.kind).toBe('invalid-argument');
    return (e as Error).message;
  }
  throw new Error('expected a throw');
}

describe('validateFunnel', () => {
  it('accepts the paper funnel', () => {
    expect(() =>
      validateFunnel({ dims: [16, 32, 64, 128, 256], shortlists: [200, 100, 50, 25] }, 256, 10),
    ).not.toThrow();
  });

  it('empty dims', () => {
    expect(message(() => validateFunnel({ dims: [], shortlists: [] }, 256, 10))).toBe('funnel dims is empty');
  });

  it('non-integer dim', () => {
    expect(message(() => validateFunnel({ dims: [16, 31.5], shortlists: [100] }, 256, 10))).toBe(
      'funnel dims[1] must be a positive integer, got 31.5',
    );
  });

  it('dim beyond the index', () => {
    expect(message(() => validateFunnel({ dims: [16, 512], shortlists: [100] }, 256, 10))).toBe(
      'funnel dims[1] = 512 exceeds the index dim 256',
    );
  });

  it('dims not increasing', () => {
    expect(message(() => validateFunnel({ dims: [16, 64, 32], shortlists: [100, 50] }, 256, 10))).toBe(
      'funnel dims must be strictly increasing: dims[2] = 32 is not greater than dims[1] = 64',
    );
  });

  it('wrong number of shortlists', () => {
    expect(message(() => validateFunnel({ dims: [16, 64, 256], shortlists: [100, 50, 25] }, 256, 10))).toBe(
      'funnel needs one shortlist size per stage except the last: 3 dims need 2 shortlists, got 3',
    );
  });

  it('non-integer shortlist', () => {
    expect(message(() => validateFunnel({ dims: [16, 64, 256], shortlists: [100, 0] }, 256, 10))).toBe(
      'funnel shortlists[1] must be a positive integer, got 0',
    );
  });

  it('shortlists increasing', () => {
    expect(message(() => validateFunnel({ dims: [16, 64, 256], shortlists: [100, 200] }, 256, 10))).toBe(
      'funnel shortlists must be non-increasing: shortlists[1] = 200 is larger than shortlists[0] = 100',
    );
  });

  it('shortlist below k', () => {
    expect(message(() => validateFunnel({ dims: [16, 64, 256], shortlists: [100, 5] }, 256, 10))).toBe(
      'funnel shortlists[1] = 5 is smaller than k = 10',
    );
  });

  it('bad k', () => {
    expect(message(() => validateFunnel({ dims: [16], shortlists: [] }, 256, 0))).toBe(
      'k must be an integer >= 1, got 0',
    );
  });
});

describe('defaultFunnel', () => {
  it('doubles dims from 16 and halves shortlists from 200, never below k', () => {
    expect(defaultFunnel(256, 10)).toEqual({ dims: [16, 32, 64, 128, 256], shortlists: [200, 100, 50, 25] });
    expect(defaultFunnel(2048, 10).shortlists).toEqual([200, 100, 50, 25, 12, 10, 10]);
    expect(defaultFunnel(12, 10)).toEqual({ dims: [12], shortlists: [] });
  });
});

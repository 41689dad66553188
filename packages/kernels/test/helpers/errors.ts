import { expect } from 'vitest';
import { MrlError, type MrlErrorKind } from '../../src/errors.js';

/** Runs `fn`, checks that it throws an MrlError of `kind`, and returns the error. */
export function thrownMrlError(fn: () => unknown, kind: MrlErrorKind): MrlError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(MrlError.is(thrown), `expected an MrlError, got ${String(thrown)}`).toBe(true);
  expect((thrown as MrlError).kind).toBe(kind);
  return thrown as MrlError;
}

/** Checks that `fn` throws an MrlError of `kind` with exactly `message`. */
export function expectMrlError(fn: () => unknown, kind: MrlErrorKind, message: string): void {
  expect(thrownMrlError(fn, kind).message).toBe(message);
}

import { MrlError } from '@mrl/core/errors';

/** Throws `invalid-argument` unless `value` is an integer in [min, max]; the message names `name`. */
export function assertIntInRange(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new MrlError('invalid-argument', `${name} must be ${range}, got ${String(value)}`);
  }
}

/**
 * Checks that a flat row-major matrix has a whole number of rows of `rowLength` values and
 * returns the row count.
 */
export function rowCount(name: string, data: ArrayLike<number>, rowLength: number): number {
  if (data.length === 0 || data.length % rowLength !== 0) {
    throw new MrlError(
      'invalid-argument',
      `${name} has ${data.length} values, which is not a positive multiple of the row length ${rowLength}`,
      `pass a row-major [rows, ${rowLength}] Float32Array`,
    );
  }
  return data.length / rowLength;
}

/**
 * Throws `invalid-argument` naming the first row (and the value's position in it) that holds
 * NaN or ±Infinity. A non-finite value would score NaN against everything, and a NaN never
 * wins a comparison, so the search would return arbitrary rows instead of failing.
 */
export function assertFiniteRows(name: string, data: Float32Array, rowLength: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    // v - v is 0 for finite v and NaN for NaN and ±Infinity: one subtraction per value.
    if (v - v !== 0) {
      const row = Math.floor(i / rowLength);
      throw new MrlError(
        'invalid-argument',
        `${name} row ${row} holds ${String(v)} at position ${i - row * rowLength} (of ${rowLength}): vectors must be finite.`,
        `Drop or recompute row ${row} (a NaN embedding usually means the encoder diverged or read an empty input).`,
      );
    }
  }
}

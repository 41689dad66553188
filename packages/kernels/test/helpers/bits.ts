// Bit-for-bit comparison of float32 arrays, for the kernels that promise the bits of the kernels
// they replace.

/** Whether `a` and `b` hold the same float32 bits (NaN payloads included), lengths included. */
export const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length &&
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/**
 * `'same'` when `got` holds the bits of `want` (any NaN equals any NaN where `anyNaN`: its
 * payload is the CPU's), else the first value that differs, named against `reference`; lengths
 * must match.
 */
export function bitDifference(got: Float32Array, want: Float32Array, reference: string, anyNaN = true): string {
  if (got.length !== want.length) return `length: got ${got.length}, ${reference} ${want.length}`;
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i] && !(anyNaN && Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      return `value ${i}: got ${got[i]}, ${reference} ${want[i]}`;
    }
  }
  return 'same';
}

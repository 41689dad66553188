import { encodeNpy, readNpyHeader, writeFileAtomically } from '@mrl/core';

export { encodeNpy };

export async function writeNpy(path: string, data: Float32Array | Int32Array, shape: readonly number[]): Promise<void> {
  await writeFileAtomically(path, encodeNpy(data, shape));
}

/** Reads a 2-D float32 or 1-D int32 `.npy` written by {@link encodeNpy} (or numpy, C order). */
export function decodeNpy(bytes: Uint8Array, source: string): { data: Float32Array | Int32Array; shape: number[] } {
  const header = readNpyHeader(bytes);
  if (header === undefined) throw new Error(`${source} is not an .npy file (bad magic)`);
  const { descr, fortranOrder: fortran, shape, dataOffset: start } = header;
  if (fortran || (descr !== '<f4' && descr !== '<i4'))
    throw new Error(
      `${source}: only C-order <f4 and <i4 arrays are supported, got ${descr}${fortran ? ' (Fortran order)' : ''}`,
    );
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - start !== count * 4)
    throw new Error(`${source}: ${bytes.length - start} data bytes for shape (${shape.join(', ')}) (truncated?)`);
  const copy = new Uint8Array(bytes.subarray(start));
  return {
    data: descr === '<f4' ? new Float32Array(copy.buffer, 0, count) : new Int32Array(copy.buffer, 0, count),
    shape,
  };
}

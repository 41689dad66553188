import { writeFileAtomically } from '@mrl/core';

/**
 * Encodes an array in NumPy's `.npy` format, version 1.0: the magic `\x93NUMPY`, version bytes
 * 1 0, a little-endian u16 header length, then a Python dict literal padded with spaces and a
 * newline so the data starts on a 64-byte boundary, then the raw little-endian values.
 */
export function encodeNpy(data: Float32Array | Int32Array, shape: readonly number[]): Uint8Array {
  const descr = data instanceof Float32Array ? '<f4' : '<i4';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const preamble = 10; // magic (6) + version (2) + header length (2)
  const total = Math.ceil((preamble + header.length + 1) / 64) * 64;
  header = `${header}${' '.repeat(total - preamble - header.length - 1)}\n`;
  if (header.length > 0xffff) throw new Error('npy header too long for version 1.0');
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), preamble);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

export async function writeNpy(path: string, data: Float32Array | Int32Array, shape: readonly number[]): Promise<void> {
  await writeFileAtomically(path, encodeNpy(data, shape));
}

/** Reads a 2-D float32 or 1-D int32 `.npy` written by {@link encodeNpy} (or numpy, C order). */
export function decodeNpy(bytes: Uint8Array, source: string): { data: Float32Array | Int32Array; shape: number[] } {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((b, i) => bytes[i] === b))
    throw new Error(`${source} is not an .npy file (bad magic)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLength;
  const header = Buffer.from(bytes.subarray(major === 1 ? 10 : 12, start)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
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

/*
 * NumPy's `.npy` format (version 1.0 written; 1.x and 2.x read): the magic `\x93NUMPY`, two
 * version bytes, a little-endian header length (u16 in 1.x, u32 from 2.0), a Python dict literal
 * padded so the data starts on a 64-byte boundary, then the raw values.
 */

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] as const;

/** What an `.npy` header says. */
export interface NpyHeader {
  /** dtype string, e.g. `<f4`. */
  descr: string | undefined;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the first value. */
  dataOffset: number;
}

/** Reads the header of an `.npy` file; `undefined` when the bytes do not start like one. */
export function readNpyHeader(bytes: Uint8Array): NpyHeader | undefined {
  if (bytes.length < 10 || !NPY_MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  const headerStart = major === 1 ? 10 : 12;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataOffset = headerStart + headerLength;
  const header = Buffer.from(bytes.subarray(headerStart, dataOffset)).toString('latin1');
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return {
    descr: /'descr':\s*'([^']+)'/.exec(header)?.[1],
    fortranOrder: /'fortran_order':\s*True/.test(header),
    shape,
    dataOffset,
  };
}

/** Encodes a float32 or int32 array as an `.npy` file, version 1.0, C order. */
export function encodeNpy(data: Float32Array | Int32Array, shape: readonly number[]): Uint8Array {
  const descr = data instanceof Float32Array ? '<f4' : '<i4';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const preamble = 10; // magic (6) + version (2) + header length (2)
  const total = Math.ceil((preamble + header.length + 1) / 64) * 64;
  header = `${header}${' '.repeat(total - preamble - header.length - 1)}\n`;
  if (header.length > 0xffff) throw new Error('npy header too long for version 1.0');
  const out = new Uint8Array(total + data.byteLength);
  out.set([...NPY_MAGIC, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), preamble);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

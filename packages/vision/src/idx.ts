import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { MrlError } from '@mrl/core';

/** An IDX array (the MNIST / Fashion-MNIST file format): unsigned bytes with a shape. */
export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/**
 * Parses IDX bytes: two zero bytes, a type code (only 0x08, unsigned byte, is used by the
 * MNIST family), the rank, then each dimension as a big-endian int32. Gzip input is detected
 * by its magic bytes.
 */
export function parseIdx(raw: Uint8Array, source = 'IDX data'): IdxArray {
  const bytes = raw[0] === 0x1f && raw[1] === 0x8b ? new Uint8Array(gunzipSync(raw)) : raw;
  const bad = (what: string): MrlError =>
    new MrlError(
      'corrupt-file',
      `${source} is not a valid IDX file: ${what}.`,
      'Re-install the data (e.g. apt-get install --reinstall dataset-fashion-mnist) or point to the right file.',
    );
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0)
    throw bad('the magic number does not start with two zero bytes');
  if (bytes[2] !== 0x08) throw bad(`element type 0x${(bytes[2] ?? 0).toString(16)} is not 0x08 (unsigned byte)`);
  const rank = bytes[3]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * rank) throw bad('the header is cut short');
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start !== count) {
    throw bad(`the header says [${shape.join(', ')}] (${count} values) but ${bytes.length - start} bytes follow`);
  }
  return { shape, data: bytes.subarray(start) };
}

export async function readIdx(path: string): Promise<IdxArray> {
  let raw: Uint8Array;
  try {
    raw = await readFile(path);
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `cannot read ${path}: ${(cause as Error).message}.`,
      'Check the path, or install the data package.',
      { cause },
    );
  }
  return parseIdx(raw, path);
}

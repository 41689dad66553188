import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { MrlError } from '../errors.js';
import { writeFileAtomically } from './atomic.js';
import { explainFsError } from './fs-errors.js';

/**
 * The safetensors format (8-byte little-endian header length, JSON header of dtype/shape/byte
 * offsets, then raw little-endian data), so weights and embeddings load in Python with
 * `safetensors.numpy.load_file` as well as here.
 */
export type SafetensorsDtype = 'F32' | 'I32' | 'U8' | 'I8';

/**
 * Dtypes the reader also accepts and widens on load, as PyTorch checkpoints store them: F16,
 * BF16 and F64 become F32 (`sourceDtype` keeps the stored one); I64 becomes I32 when every value
 * fits (position-id buffers do).
 */
export type WidenedDtype = 'F16' | 'BF16' | 'F64' | 'I64';

export interface NamedArray {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array | Int8Array;
  /** The dtype stored in the file when the reader widened it (F16, BF16, F64 or I64). */
  sourceDtype?: WidenedDtype;
}

export interface SafetensorsContent {
  tensors: Map<string, NamedArray>;
  /** The file's metadata, without the checksum entry. */
  metadata: Record<string, string>;
  /** Whether the file carried a checksum (then it matched); files from other writers have none. */
  checksum?: 'verified' | 'absent';
}

/**
 * Metadata key of the SHA-256 checksum every file written here carries. It covers the tensor table
 * (names, dtypes, shapes, offsets), the other metadata entries and the data bytes, so a bit flip
 * or a partial copy anywhere but in this one value is detected on load. Readers that do not know
 * it (Python's safetensors) see one more metadata string.
 */
export const CHECKSUM_KEY = 'mrl.sha256';

function checksumOf(header: Record<string, unknown>, data: Uint8Array): string {
  const hash = createHash('sha256');
  const metadata = (header.__metadata__ ?? {}) as Record<string, unknown>;
  const meta = Object.keys(metadata)
    .filter((k) => k !== CHECKSUM_KEY)
    .sort()
    .map((k) => [k, metadata[k]]);
  const table = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, e]) => {
      const { dtype, shape, data_offsets } = (e ?? {}) as Record<string, unknown>;
      return [name, dtype, shape, data_offsets];
    });
  hash.update(JSON.stringify({ meta, table }));
  hash.update(data);
  return hash.digest('hex');
}

/**
 * Refuses NaN and +-Inf in float tensors, naming the tensor, the element and the file: weights
 * that diverged must not load silently.
 */
export function assertFiniteTensors(tensors: Map<string, NamedArray>, source: string): void {
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array)) continue;
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        throw new MrlError(
          'non-finite-value',
          `${source}: tensor '${name}' holds ${data[i]} at element ${i} of ${data.length}; the weights diverged before they were saved.`,
          'Use an older checkpoint (mrl-cli fit --resume --from-checkpoint <step>) or train again with a lower --lr or --clip-norm.',
        );
      }
    }
  }
}

const BYTES: Record<SafetensorsDtype | WidenedDtype, number> = {
  F32: 4,
  I32: 4,
  U8: 1,
  I8: 1,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
};

/** IEEE half-precision bits to a float (subnormals, infinities and NaN included). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** F16, BF16, F64 and I64 payloads widened to F32 / I32; `null` when an I64 value does not fit. */
function widen(dtype: WidenedDtype, bytes: Uint8Array, count: number): Float32Array | Int32Array | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'I64') {
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const v = view.getBigInt64(i * 8, true);
      if (v > 2147483647n || v < -2147483648n) return null;
      out[i] = Number(v);
    }
    return out;
  }
  const out = new Float32Array(count);
  if (dtype === 'F64') for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
  else if (dtype === 'F16') for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  else {
    // BF16 is the top half of an F32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
  }
  return out;
}

function dtypeOf(data: NamedArray['data']): SafetensorsDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Int8Array) return 'I8';
  return 'U8';
}

export function encodeSafetensors(
  tensors: Map<string, Omit<NamedArray, 'dtype'>>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { ...metadata } };
  let offset = 0;
  const entries = [...tensors.entries()];
  for (const [name, t] of entries) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new MrlError(
        'invalid-argument',
        `tensor '${name}' has shape [${t.shape.join(', ')}] but ${t.data.length} values.`,
      );
    }
    header[name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const [, t] of entries) {
    data.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  (header.__metadata__ as Record<string, string>)[CHECKSUM_KEY] = checksumOf(header, data);
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

/** Parses safetensors bytes; `source` names the file in error messages. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsContent {
  const corrupt = (what: string): MrlError =>
    new MrlError(
      'corrupt-file',
      `${source} is not a valid safetensors file: ${what}.`,
      'Delete or replace the file; if it is a checkpoint, resume from an older one.',
    );
  if (bytes.length < 8) throw corrupt(`it has only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8)
    throw corrupt(`the header claims ${headerLength} bytes but the file is ${bytes.length} bytes long (truncated?)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8')) as Record<
      string,
      unknown
    >;
  } catch {
    throw corrupt('the header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw corrupt('the header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = { ...((entry ?? {}) as Record<string, string>) };
      delete metadata[CHECKSUM_KEY];
      continue;
    }
    const {
      dtype,
      shape,
      data_offsets: offsets,
    } = (entry ?? {}) as { dtype: SafetensorsDtype | WidenedDtype; shape: number[]; data_offsets: [number, number] };
    if (
      !Array.isArray(shape) ||
      !shape.every((n) => Number.isInteger(n) && n >= 0) ||
      !Array.isArray(offsets) ||
      offsets.length !== 2
    ) {
      throw corrupt(`tensor '${name}' needs a shape of non-negative integers and two data_offsets`);
    }
    const width = Object.hasOwn(BYTES, dtype) ? BYTES[dtype] : undefined;
    if (width === undefined) {
      throw new MrlError(
        'unsupported',
        `${source}: tensor '${name}' has dtype ${String(dtype)}, which mrl cannot read.`,
        `Save the weights as ${Object.keys(BYTES).join(', ')} (e.g. in PyTorch: model.float() before save_file).`,
      );
    }
    const [begin, end] = offsets;
    if (!(begin >= 0 && end >= begin && end <= dataLength))
      throw corrupt(`tensor '${name}' lies outside the data (truncated?)`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (count * width !== end - begin)
      throw corrupt(`tensor '${name}' has ${end - begin} bytes for shape [${shape.join(', ')}]`);
    // A copy in its own buffer: `Buffer.slice` (readFile's result) would share the file's memory.
    const copy = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end));
    if (dtype === 'F16' || dtype === 'BF16' || dtype === 'F64' || dtype === 'I64') {
      const data = widen(dtype, copy, count);
      if (data === null) throw corrupt(`I64 tensor '${name}' holds values outside the 32-bit integer range`);
      tensors.set(name, { dtype: dtype === 'I64' ? 'I32' : 'F32', shape, data, sourceDtype: dtype });
      continue;
    }
    const data =
      dtype === 'F32'
        ? new Float32Array(copy.buffer, 0, count)
        : dtype === 'I32'
          ? new Int32Array(copy.buffer, 0, count)
          : dtype === 'I8'
            ? new Int8Array(copy.buffer, 0, count)
            : new Uint8Array(copy.buffer, 0, count);
    tensors.set(name, { dtype, shape, data });
  }
  const stored = (header.__metadata__ as Record<string, unknown> | undefined)?.[CHECKSUM_KEY];
  if (stored !== undefined && stored !== checksumOf(header, bytes.subarray(dataStart))) {
    throw new MrlError(
      'corrupt-file',
      `${source} failed its SHA-256 checksum: its bytes changed after it was written (a bit flip, a partial copy or an edit).`,
      'Restore the file from a copy or write it again; if it is a checkpoint, resume from an older one (--from-checkpoint <step>).',
    );
  }
  return { tensors, metadata, checksum: stored === undefined ? 'absent' : 'verified' };
}

export async function writeSafetensors(
  path: string,
  tensors: Map<string, Omit<NamedArray, 'dtype'>>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomically(path, encodeSafetensors(tensors, metadata));
}

export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw explainFsError(cause, 'cannot read', path) ?? cause;
    throw new MrlError('missing-file', `cannot read ${path}: ${(cause as Error).message}.`, 'Check the path.', {
      cause,
    });
  }
  return decodeSafetensors(bytes, path);
}

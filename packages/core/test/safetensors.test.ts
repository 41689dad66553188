import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MrlError } from '../src/errors.js';
import {
  assertFiniteTensors,
  CHECKSUM_KEY,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type NamedArray,
} from '../src/io/safetensors.js';
import { thrownMrlError } from './helpers/errors.js';

const PYTHON = '/usr/bin/python3';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sample(): Map<string, Omit<NamedArray, 'dtype'>> {
  return new Map<string, Omit<NamedArray, 'dtype'>>([
    ['weights', { shape: [2, 3], data: new Float32Array([0.5, -1.25, 3.0e-8, 1e30, -0, Math.PI]) }],
    ['ids', { shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) }],
    ['bytes', { shape: [1, 5], data: new Uint8Array([0, 1, 127, 128, 255]) }],
    ['signed', { shape: [3], data: new Int8Array([-128, 0, 127]) }],
    ['scalar', { shape: [], data: new Float32Array([7.5]) }],
  ]);
}

/** The 8-byte length and parsed JSON header of safetensors bytes. */
function header(bytes: Uint8Array): { length: number; json: Record<string, unknown>; text: string } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + 8, length).toString('utf8');
  return { length, json: JSON.parse(text) as Record<string, unknown>, text };
}

/** Hand-built safetensors bytes with a given header text and data bytes. */
function build(headerText: string, data: Uint8Array = new Uint8Array(0), claimedLength?: number): Uint8Array {
  const h = Buffer.from(headerText, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(claimedLength ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function corruptError(fn: () => unknown): MrlError {
  return thrownMrlError(fn, 'corrupt-file');
}

describe('encodeSafetensors / decodeSafetensors', () => {
  it('round-trips F32, I32, U8, I8 tensors and metadata', () => {
    const input = sample();
    const decoded = decodeSafetensors(encodeSafetensors(input, { format: 'test/1', note: 'ünïcode ✓' }));
    expect(decoded.metadata).toEqual({ format: 'test/1', note: 'ünïcode ✓' });
    expect([...decoded.tensors.keys()]).toEqual([...input.keys()]);
    const expectedDtype = { weights: 'F32', ids: 'I32', bytes: 'U8', signed: 'I8', scalar: 'F32' } as const;
    for (const [name, t] of input) {
      const out = decoded.tensors.get(name)!;
      expect(out.dtype).toBe(expectedDtype[name as keyof typeof expectedDtype]);
      expect(out.shape).toEqual(t.shape);
      expect(out.data.constructor).toBe(t.data.constructor);
      expect(Array.from(out.data)).toEqual(Array.from(t.data));
    }
  });

  it('decodes into copies that do not alias the input bytes', () => {
    const bytes = encodeSafetensors(new Map([['x', { shape: [2], data: new Float32Array([1, 2]) }]]));
    const decoded = decodeSafetensors(bytes);
    bytes.fill(0, bytes.length - 8);
    expect(Array.from(decoded.tensors.get('x')!.data)).toEqual([1, 2]);
  });

  it('writes the published layout: 8-byte LE length, JSON header padded to 8 bytes, contiguous data', () => {
    const input = sample();
    const bytes = encodeSafetensors(input, { a: 'b' });
    const { length, json, text } = header(bytes);
    expect((8 + length) % 8).toBe(0);
    expect(text.startsWith('{')).toBe(true);
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    expect(json.__metadata__).toEqual({ a: 'b', [CHECKSUM_KEY]: expect.stringMatching(/^[0-9a-f]{64}$/) });
    let offset = 0;
    for (const [name, t] of input) {
      const entry = json[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
      expect(Object.keys(entry).sort()).toEqual(['data_offsets', 'dtype', 'shape']);
      expect(entry.shape).toEqual(t.shape);
      expect(entry.data_offsets).toEqual([offset, offset + t.data.byteLength]);
      const raw = bytes.slice(8 + length + offset, 8 + length + offset + t.data.byteLength);
      expect(Array.from(raw)).toEqual(Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
      offset += t.data.byteLength;
    }
    expect(bytes.length).toBe(8 + length + offset);
  });

  it('pads every header length to a multiple of 8', () => {
    for (let n = 1; n <= 9; n++) {
      const bytes = encodeSafetensors(new Map([['t'.repeat(n), { shape: [1], data: new Uint8Array([n]) }]]));
      expect((8 + header(bytes).length) % 8).toBe(0);
    }
  });

  it('encodes data held in a view with an offset into a larger buffer', () => {
    const backing = new Float32Array([9, 9, 1, 2, 3, 9]);
    const view = backing.subarray(2, 5);
    const decoded = decodeSafetensors(encodeSafetensors(new Map([['v', { shape: [3], data: view }]])));
    expect(Array.from(decoded.tensors.get('v')!.data)).toEqual([1, 2, 3]);
  });

  it('rejects a shape that does not match the number of values', () => {
    let thrown: unknown;
    try {
      encodeSafetensors(new Map([['w', { shape: [2, 2], data: new Float32Array(3) }]]));
    } catch (e) {
      thrown = e;
    }
    expect(MrlError.is(thrown)).toBe(true);
    expect((thrown as MrlError).kind).toBe('invalid-argument');
    expect((thrown as MrlError).message).toBe("tensor 'w' has shape [2, 2] but 3 values.");
  });
});

describe('PyTorch dtypes widened on read', () => {
  const u16 = (values: number[]): Uint8Array => {
    const out = new Uint8Array(values.length * 2);
    values.forEach((v, i) => new DataView(out.buffer).setUint16(i * 2, v, true));
    return out;
  };

  it('reads F16 bit patterns (normal, subnormal, largest, infinite) as F32', () => {
    const bits = [0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x8000];
    const t = decodeSafetensors(
      build('{"h":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}', u16(bits)),
    ).tensors.get('h')!;
    expect(t.dtype).toBe('F32');
    expect(t.sourceDtype).toBe('F16');
    expect(Array.from(t.data)).toEqual([1, -2, 0.333251953125, 65504, 2 ** -24, Infinity, -Infinity, -0]);
  });

  it('reads BF16 as the top half of an F32', () => {
    const t = decodeSafetensors(
      build('{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}', u16([0x3f80, 0x4049, 0xc2f7])),
    ).tensors.get('b')!;
    expect(t.sourceDtype).toBe('BF16');
    expect(Array.from(t.data)).toEqual([1, 3.140625, -123.5]);
  });

  it('reads F64 rounded to F32 and I64 as I32', () => {
    const data = new Uint8Array(32);
    const view = new DataView(data.buffer);
    view.setFloat64(0, 0.1, true);
    view.setFloat64(8, -3, true);
    view.setBigInt64(16, -7n, true);
    view.setBigInt64(24, 2147483647n, true);
    const { tensors } = decodeSafetensors(
      build(
        '{"f":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"i":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}}',
        data,
      ),
    );
    expect(Array.from(tensors.get('f')!.data)).toEqual([Math.fround(0.1), -3]);
    expect(tensors.get('i')!.dtype).toBe('I32');
    expect(Array.from(tensors.get('i')!.data)).toEqual([-7, 2147483647]);
  });
});

describe('corrupt safetensors', () => {
  const source = 'weights/bad.safetensors';

  it('rejects a file shorter than the length field', () => {
    const e = corruptError(() => decodeSafetensors(new Uint8Array(5), source));
    expect(e.message).toBe(`${source} is not a valid safetensors file: it has only 5 bytes.`);
  });

  it('rejects a header length beyond the end of the file', () => {
    const e = corruptError(() => decodeSafetensors(build('{}', new Uint8Array(0), 1000), source));
    expect(e.message).toBe(
      `${source} is not a valid safetensors file: the header claims 1000 bytes but the file is 10 bytes long (truncated?).`,
    );
  });

  it('rejects a header that is not JSON', () => {
    const e = corruptError(() => decodeSafetensors(build('{"a": [1, 2'), source));
    expect(e.message).toBe(`${source} is not a valid safetensors file: the header is not JSON.`);
  });

  it('rejects data offsets outside the data', () => {
    const bytes = build('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(4));
    const e = corruptError(() => decodeSafetensors(bytes, source));
    expect(e.message).toBe(`${source} is not a valid safetensors file: tensor 'x' lies outside the data (truncated?).`);
  });

  it('rejects a byte count that does not fit the shape', () => {
    const bytes = build('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8));
    const e = corruptError(() => decodeSafetensors(bytes, source));
    expect(e.message).toBe(`${source} is not a valid safetensors file: tensor 'x' has 8 bytes for shape [3].`);
  });

  it('rejects a header that is JSON but not an object', () => {
    const e = corruptError(() => decodeSafetensors(build('null'), source));
    expect(e.message).toBe(`${source} is not a valid safetensors file: the header is not a JSON object.`);
  });

  it('rejects an entry without data_offsets', () => {
    const e = corruptError(() =>
      decodeSafetensors(build('{"x":{"dtype":"F32","shape":[1]}}', new Uint8Array(4)), source),
    );
    expect(e.message).toBe(
      `${source} is not a valid safetensors file: tensor 'x' needs a shape of non-negative integers and two data_offsets.`,
    );
  });

  it('rejects an unsupported dtype, naming the tensor and the readable dtypes', () => {
    const bytes = build('{"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1));
    const e = thrownMrlError(() => decodeSafetensors(bytes, source), 'unsupported');
    expect(e.message).toBe(`${source}: tensor 'x' has dtype F8_E4M3, which mrl cannot read.`);
    expect(e.fix).toBe(
      'Save the weights as F32, I32, U8, I8, F16, BF16, F64, I64 (e.g. in PyTorch: model.float() before save_file).',
    );
  });

  it('rejects I64 values outside the 32-bit range', () => {
    const data = new Uint8Array(16);
    new DataView(data.buffer).setBigInt64(8, 2n ** 40n, true);
    const bytes = build('{"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}', data);
    const e = corruptError(() => decodeSafetensors(bytes, source));
    expect(e.message).toBe(
      `${source} is not a valid safetensors file: I64 tensor 'x' holds values outside the 32-bit integer range.`,
    );
  });

  it('rejects a truncated file read from disk, naming its path', async () => {
    const path = join(dir, 'truncated.safetensors');
    const full = encodeSafetensors(sample());
    await writeFile(path, full.subarray(0, full.length - 3));
    await expect(readSafetensors(path)).rejects.toSatisfy(
      (e: unknown) =>
        MrlError.is(e) &&
        e.kind === 'corrupt-file' &&
        e.message.startsWith(`${path} is not a valid safetensors file: tensor '`),
    );
  });

  it('reports a missing file as missing-file', async () => {
    const path = join(dir, 'absent.safetensors');
    await expect(readSafetensors(path)).rejects.toSatisfy(
      (e: unknown) => MrlError.is(e) && e.kind === 'missing-file' && e.message.startsWith(`cannot read ${path}:`),
    );
  });
});

describe('writeSafetensors / readSafetensors', () => {
  it('round-trips through a file', async () => {
    const path = join(dir, 'nested', 'roundtrip.safetensors');
    await writeSafetensors(path, sample(), { k: 'v' });
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ k: 'v' });
    for (const [name, t] of sample()) expect(Array.from(tensors.get(name)!.data)).toEqual(Array.from(t.data));
    // readFile hands back a pooled Buffer; decoded arrays must own exactly their bytes.
    expect(tensors.get('weights')!.data.byteOffset).toBe(0);
    expect(tensors.get('weights')!.data.buffer.byteLength).toBe(24);
  });

  it('writes a file that Python reads with struct and numpy', async () => {
    expect(existsSync(PYTHON), `${PYTHON} is required for this test (python3 with numpy) but it is missing`).toBe(true);
    const path = join(dir, 'python.safetensors');
    const input = sample();
    await writeSafetensors(path, input, { format: 'test/1' });
    const script = [
      'import json, struct, sys',
      'import numpy as np',
      'raw = open(sys.argv[1], "rb").read()',
      '(n,) = struct.unpack("<Q", raw[:8])',
      'assert (8 + n) % 8 == 0, "data not 8-byte aligned"',
      'header = json.loads(raw[8:8 + n].decode("utf-8"))',
      'data = raw[8 + n:]',
      'kinds = {"F32": "<f4", "I32": "<i4", "U8": "u1", "I8": "i1"}',
      'out = {"__metadata__": header.pop("__metadata__", None)}',
      'for name, e in header.items():',
      '    b, end = e["data_offsets"]',
      '    a = np.frombuffer(data[b:end], dtype=kinds[e["dtype"]]).reshape(e["shape"])',
      '    out[name] = {"dtype": e["dtype"], "shape": list(a.shape), "values": [float(x) if e["dtype"] == "F32" else int(x) for x in a.reshape(-1)]}',
      // The checksum, recomputed from its documented definition with hashlib.
      'import hashlib',
      'meta = sorted([k, v] for k, v in out["__metadata__"].items() if k != "mrl.sha256")',
      'table = [[k, e["dtype"], e["shape"], e["data_offsets"]] for k, e in header.items()]',
      'canon = json.dumps({"meta": meta, "table": table}, separators=(",", ":"), ensure_ascii=False)',
      'out["sha256"] = hashlib.sha256(canon.encode("utf-8") + data).hexdigest()',
      'print(json.dumps(out))',
    ].join('\n');
    const result = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8' });
    expect(result.error, String(result.error)).toBeUndefined();
    expect(result.status, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as Record<
      string,
      { dtype: string; shape: number[]; values: number[] } | null
    > & { sha256: string };
    expect(parsed.__metadata__).toEqual({ format: 'test/1', [CHECKSUM_KEY]: parsed.sha256 });
    delete (parsed as Record<string, unknown>).sha256;
    for (const [name, t] of input) {
      const py = parsed[name]!;
      expect(py.shape).toEqual(t.shape);
      // JSON drops the sign of -0; compare values as numbers.
      expect(py.values.map((v) => v + 0)).toEqual(Array.from(t.data, (v) => v + 0));
    }
    expect(parsed.weights!.dtype).toBe('F32');
    expect(parsed.ids!.dtype).toBe('I32');
    expect(parsed.bytes!.dtype).toBe('U8');
    expect((await readFile(path)).length).toBeGreaterThan(8);
  });
});

describe('checksums and finite values', () => {
  const tensors = (): Map<string, Omit<NamedArray, 'dtype'>> =>
    new Map([['w', { shape: [4], data: new Float32Array([1, 2, 3, 4]) }]]);

  it('detects a flipped bit in the data, the tensor table and the metadata', () => {
    const good = encodeSafetensors(tensors(), { step: '10' });
    expect(decodeSafetensors(good).checksum).toBe('verified');
    const { length, text } = header(good);
    const flipData = Uint8Array.from(good);
    flipData[8 + length + 5]! ^= 0x04;
    const dataError = corruptError(() => decodeSafetensors(flipData, 'ckpt.safetensors'));
    expect(dataError.message).toBe(
      'ckpt.safetensors failed its SHA-256 checksum: its bytes changed after it was written (a bit flip, a partial copy or an edit).',
    );
    // Same-length edits of the header: a step number and a shape.
    const editHeader = (from: string, to: string): Uint8Array => {
      const out = Uint8Array.from(good);
      out.set(Buffer.from(text.replace(from, to), 'utf8'), 8);
      return out;
    };
    expect(corruptError(() => decodeSafetensors(editHeader('"step":"10"', '"step":"90"'))).message).toContain(
      'failed its SHA-256 checksum',
    );
    const reshaped = editHeader('"shape":[4]', '"shape":[1]');
    expect(() => decodeSafetensors(reshaped)).toThrow(/has 16 bytes for shape \[1\]/);
  });

  it('loads files without a checksum (other writers) and says so', () => {
    const withSum = encodeSafetensors(tensors(), { a: 'b' });
    const { text } = header(withSum);
    const stripped = JSON.parse(text) as Record<string, Record<string, string>>;
    delete stripped.__metadata__![CHECKSUM_KEY];
    const bytes = build(JSON.stringify(stripped), withSum.subarray(8 + header(withSum).length));
    const decoded = decodeSafetensors(bytes);
    expect(decoded.checksum).toBe('absent');
    expect(decoded.metadata).toEqual({ a: 'b' });
  });

  it('refuses NaN and Inf naming the file, tensor and element', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const t = new Map<string, NamedArray>([
        ['ok', { dtype: 'I32', shape: [1], data: new Int32Array([1]) }],
        ['layer.w', { dtype: 'F32', shape: [3], data: new Float32Array([0, bad, 1]) }],
      ]);
      const error = thrownMrlError(() => assertFiniteTensors(t, 'model/weights.safetensors'), 'non-finite-value');
      expect(error.message).toBe(
        `model/weights.safetensors: tensor 'layer.w' holds ${bad} at element 1 of 3; the weights diverged before they were saved.`,
      );
    }
    expect(() =>
      assertFiniteTensors(new Map([['w', { dtype: 'F32', shape: [1], data: new Float32Array([1e38]) }]]), 'f'),
    ).not.toThrow();
  });
});

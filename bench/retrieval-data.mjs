// Data for the retrieval benchmarks: the synthetic Matryoshka-like set, and .npy files read
// straight into one typed array (no second copy, so a child process's peak RSS is the data
// plus what its method builds).
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createRandom } from '@mrl/core/rng';

/**
 * Matryoshka-like synthetic embeddings. Every coordinate j has spread s_j = (1 + j / 4)^-decay,
 * so variance (and with it most of the neighbour structure) sits in the early coordinates, as
 * in trained MRL models where a short prefix already ranks well and later coordinates refine.
 * `classes` class centres hang under `classes / 20` super-classes (coarse then fine structure);
 * an example is its class centre plus noise with the same per-coordinate profile times `noise`.
 */
export function synthetic({ n, nq, d, classes, seed, noise = 0.8, decay = 0.75 }) {
  const rand = createRandom(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const spread = Float64Array.from({ length: d }, (_, j) => (1 + j / 4) ** -decay);
  const supers = Math.max(1, Math.floor(classes / 20));
  const superC = new Float32Array(supers * d);
  for (let s = 0; s < supers; s++) for (let j = 0; j < d; j++) superC[s * d + j] = g() * spread[j];
  const centres = new Float32Array(classes * d);
  for (let c = 0; c < classes; c++) {
    const s = c % supers;
    for (let j = 0; j < d; j++) centres[c * d + j] = superC[s * d + j] + 0.7 * g() * spread[j];
  }
  const make = (count) => {
    const x = new Float32Array(count * d);
    const y = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const c = Math.floor(rand() * classes);
      y[i] = c;
      for (let j = 0; j < d; j++) x[i * d + j] = centres[c * d + j] + noise * g() * spread[j];
    }
    return [x, y];
  };
  const [vectors, labels] = make(n);
  const [queries, queryLabels] = make(nq);
  return { vectors, labels, queries, queryLabels, d };
}

function readFully(fd, bytes, position) {
  let off = 0;
  while (off < bytes.length) {
    const got = readSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30), position + off);
    if (got === 0) throw new Error(`file ended ${bytes.length - off} bytes early`);
    off += got;
  }
}

/**
 * Reads a little-endian .npy file (float32, int32 or int64 -> int32; C order; 1-D or 2-D) into
 * one typed array. `rows` limits how many leading rows are read.
 */
export function readNpy(file, rows = Infinity) {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(Math.min(fstatSync(fd).size, 4096));
    readFully(fd, head, 0);
    if (head.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file} is not a .npy file`);
    const major = head[6];
    const headerLen = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + headerLen;
    const header = head.toString('latin1', major === 1 ? 10 : 12, start);
    const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
    const shape = /'shape':\s*\(([^)]*)\)/
      .exec(header)?.[1]
      .split(',')
      .filter((s) => s.trim())
      .map(Number);
    if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order is not supported`);
    shape[0] = Math.min(shape[0], rows);
    const count = shape.reduce((a, b) => a * b, 1);
    const Ctor = { '<f4': Float32Array, '<i4': Int32Array, '<i8': BigInt64Array }[descr];
    if (Ctor === undefined) throw new Error(`${file}: dtype ${descr} is not supported (float32, int32, int64)`);
    const out = new Ctor(count);
    readFully(fd, new Uint8Array(out.buffer), start);
    return { data: Ctor === BigInt64Array ? Int32Array.from(out, Number) : out, shape };
  } finally {
    closeSync(fd);
  }
}

/** Writes a C-order .npy file (float32 or int32) without copying the data. */
export function writeNpy(file, data, shape) {
  const descr = data instanceof Int32Array ? '<i4' : '<f4';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const fd = openSync(file, 'w');
  try {
    for (const part of [
      head,
      Buffer.from(header, 'latin1'),
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    ]) {
      let off = 0;
      while (off < part.length) off += writeSync(fd, part, off, Math.min(part.length - off, 1 << 30));
    }
  } finally {
    closeSync(fd);
  }
}

// Why: the Matryoshka loss over a vocabulary (BERT's tied MLM head, 30,522 classes) is one
// softmax cross-entropy per nesting dim. The stacked kernels (native_prefix_softmax.ts) write
// every prefix's [N, C] logits and probabilities to memory and read them back for the
// gradient: about seven passes over a 19 MB array per extra dim, which made the head 1.3x a
// plain one. These kernels stream the vocabulary in chunks of `chunk` classes instead, and keep
// every prefix's [N, chunk] block in cache:
//   forward:  per chunk, L_j = L_{j-1} + z_j @ W_j^T (the same products as one full-width GEMM,
//             split by nesting block), then lse_j(chunk) = logsumexp(L_j); the chunk results are
//             merged in an online log-sum-exp per prefix. The target logit is a dot product per
//             row, so no [N, C] array is stored; only lse [k, N] is kept for the gradient.
//   backward: per chunk, the logits again (one more GEMM's worth of work, far cheaper than the
//             memory passes it replaces), G_j = exp(L_j - lse_j) * c_j (c_j = dy_j / N per row),
//             the suffix sums S_j = S_{j+1} + G_j, then dW[chunk, block_j] = S_j^T z_j,
//             dz_j += S_j W[chunk, block_j] and db[chunk] = colsum(S_1). The one-hot part of
//             softmax minus one-hot touches one class per row, so it is added afterwards as
//             N rank-one corrections.
// Where the products run on oneDNN (`native.prefixCe`, native/onednn_prefix_ce.cc) both passes
// run there: the GEMMs on oneDNN's matmul reading and writing the nesting blocks in place, and the
// per-prefix exp, log-sum-exp and suffix sums fused into one vectorised pass per row. Otherwise
// each chunk is one ONNX Runtime graph (GEMMs on MLAS, exp and reductions vectorised). Either way
// no per-element work runs in JavaScript. Labels equal to IGNORE_INDEX (-100, PyTorch's default)
// count for nothing; the mean is over the other rows.
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import { initializer, node, ONNX_FLOAT, ONNX_INT64, onnxModel, type ProtoField, valueInfo } from '../onnx/proto.js';
import type { NativeArray, NativeKernels } from '../native/onnxruntime.js';
import { dim, heapF32, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Inputs embedding [N, D], weight [C, D], bias? [C], labels [N] int32; outputs [losses [k], lse [k, N]]. */
export const CHUNKED_PREFIX_CE = 'MrlChunkedPrefixSoftmaxCrossEntropy';
/** Inputs dy [k], lse [k, N], labels, embedding, weight, bias?; outputs [dEmbedding, dWeight, dBias?]. */
export const CHUNKED_PREFIX_CE_GRAD = 'MrlChunkedPrefixSoftmaxCrossEntropyGrad';
/** A label that counts for nothing (PyTorch's `ignore_index` default). */
export const IGNORE_INDEX = -100;
/**
 * Classes per chunk: every prefix's [N, 512] float32 block of a chunk (k of them) stays in cache
 * for the few hundred rows of an MLM batch. On oneDNN BERT-mini's Matryoshka head alone (154 rows,
 * six dims, 1 thread) took 137-145 ms of CPU at 512 against 149-158 at 1024 and 155-164 at 2048
 * in one paired sweep and tied in another (bench/RESULTS.md); the ONNX Runtime graphs take the
 * same time at 512 and 2048. 512 also keeps a quarter of 2048's memory.
 */
export const DEFAULT_VOCAB_CHUNK = 512;

export interface ChunkedPrefixAttrs {
  /** Ascending nesting dims, each <= D. */
  dims: number[];
  /** Classes per chunk. */
  chunk: number;
}

interface Geometry {
  rows: number;
  width: number; // D
  classes: number;
  starts: number[];
  widths: number[];
  /** The largest nesting dim: embedding columns past it reach no logit. */
  last: number;
}

function geometry(embedding: TensorInfo, weight: TensorInfo, attrs: ChunkedPrefixAttrs): Geometry {
  const [rows, width] = [dim(embedding.shape, 0), dim(embedding.shape, 1)];
  if (weight.shape.length !== 2 || dim(weight.shape, 1) !== width) {
    throw new MrlError(
      'invalid-argument',
      `${CHUNKED_PREFIX_CE}: weight [${weight.shape.join(', ')}] is not a [classes, ${width}] table for embedding width ${width}.`,
    );
  }
  if (!(Number.isInteger(attrs.chunk) && attrs.chunk > 0))
    throw new MrlError(
      'invalid-argument',
      `${CHUNKED_PREFIX_CE}: chunk must be a positive integer, got ${attrs.chunk}.`,
    );
  const starts: number[] = [];
  const widths: number[] = [];
  attrs.dims.forEach((m, j) => {
    const start = j === 0 ? 0 : attrs.dims[j - 1]!;
    if (!(Number.isInteger(m) && m > start && m <= width))
      throw new MrlError(
        'invalid-argument',
        `${CHUNKED_PREFIX_CE}: dims [${attrs.dims.join(', ')}] are not ascending integers within 1..${width}.`,
      );
    starts.push(start);
    widths.push(m - start);
  });
  if (widths.length === 0) throw new MrlError('invalid-argument', `${CHUNKED_PREFIX_CE}: no nesting dims given.`);
  return { rows, width, classes: dim(weight.shape, 0), starts, widths, last: attrs.dims[attrs.dims.length - 1]! };
}

/** Labels, checked: each a class id or IGNORE_INDEX. */
function labelsOf(backend: BackendWasm, labels: TensorInfo, rows: number, classes: number): Int32Array {
  if (labels.dtype !== 'int32' || labels.shape.length !== 1 || dim(labels.shape, 0) !== rows) {
    throw new MrlError(
      'invalid-argument',
      `${CHUNKED_PREFIX_CE}: labels must be int32 [${rows}], got ${labels.dtype} [${labels.shape.join(', ')}].`,
    );
  }
  const ids = backend.typedArrayFromHeap(labels) as Int32Array;
  for (let i = 0; i < ids.length; i++) {
    const label = ids[i]!;
    if (label !== IGNORE_INDEX && !(label >= 0 && label < classes)) {
      throw new MrlError(
        'invalid-argument',
        `softmaxCrossEntropy: label ${label} of row ${i} is outside [0, ${classes}) and is not the ignore index ${IGNORE_INDEX}.`,
      );
    }
  }
  return ids;
}

const int64s = (name: string, values: readonly number[]): ProtoField =>
  initializer(name, [values.length], ONNX_INT64, new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer));

/**
 * The prefix logits of one chunk, L0..L{k-1} [n, c], from inputs Z0.. [n, w_j] (the embedding's
 * nesting blocks), W [c, D] (the chunk's rows of the table) and B [c].
 */
function logitNodes(g: Geometry): ProtoField[] {
  const out: ProtoField[] = [int64s('axis1', [1])];
  g.widths.forEach((w, j) => {
    const start = g.starts[j]!;
    const whole = start === 0 && w === g.width;
    if (!whole) {
      out.push(int64s(`s${j}`, [start]), int64s(`e${j}`, [start + w]));
      out.push(node('Slice', ['W', `s${j}`, `e${j}`, 'axis1'], [`W${j}`]));
    }
    out.push(node('Gemm', [`Z${j}`, whole ? 'W' : `W${j}`, j === 0 ? 'B' : `L${j - 1}`], [`L${j}`], { transB: 1 }));
  });
  return out;
}

const inputsOf = (g: Geometry): ProtoField[] => [
  ...g.widths.map((_, j) => valueInfo(11, `Z${j}`, ONNX_FLOAT)),
  valueInfo(11, 'W', ONNX_FLOAT),
  valueInfo(11, 'B', ONNX_FLOAT),
];

const OPSETS = { '': 13 };

/** Forward graph: R_j [n] = logsumexp over the chunk of L_j. */
function forwardModel(g: Geometry): Uint8Array {
  return onnxModel(
    'mrl-chunked-prefix-ce',
    [
      ...logitNodes(g),
      // ONNX Runtime's ReduceLogSumExp is a scalar loop, ten times slower than its vectorised
      // LogSoftmax; the row's log-sum-exp is L - LogSoftmax(L) in every column, so reading one column of each is enough.
      int64s('zero', [0]),
      int64s('one', [1]),
      ...g.widths.flatMap((_, j) => [
        node('LogSoftmax', [`L${j}`], [`LS${j}`], { axis: 1 }),
        node('Slice', [`L${j}`, 'zero', 'one', 'axis1'], [`Lc${j}`]),
        node('Slice', [`LS${j}`, 'zero', 'one', 'axis1'], [`LSc${j}`]),
        node('Sub', [`Lc${j}`, `LSc${j}`], [`LD${j}`]),
        node('Squeeze', [`LD${j}`, 'axis1'], [`R${j}`]),
      ]),
      ...inputsOf(g),
      ...g.widths.map((_, j) => valueInfo(12, `R${j}`, ONNX_FLOAT)),
    ],
    OPSETS,
  );
}

/**
 * Gradient graph: from A_j [n, 1] = lse_j - log|c_j| (and, with `signed`, Sg_j = sign c_j),
 * G_j = exp(L_j - A_j) (* Sg_j), S_j = S_{j+1} + G_j; outputs DW [c, D] (ZP [c, D - last]
 * zeros fill the unused columns), DZ_j = S_j W_j [n, w_j], DB = colsum(S_0) [c].
 */
function gradientModel(g: Geometry, signed: boolean): Uint8Array {
  const k = g.widths.length;
  const nodes: ProtoField[] = [...logitNodes(g), int64s('axis0', [0])];
  for (let j = k - 1; j >= 0; j--) {
    nodes.push(node('Sub', [`L${j}`, `A${j}`], [`D${j}`]));
    nodes.push(node('Exp', [`D${j}`], [signed ? `E${j}` : `G${j}`]));
    if (signed) nodes.push(node('Mul', [`E${j}`, `Sg${j}`], [`G${j}`]));
    if (j < k - 1) nodes.push(node('Add', [j + 1 === k - 1 ? `G${j + 1}` : `S${j + 1}`, `G${j}`], [`S${j}`]));
    const s = j === k - 1 ? `G${j}` : `S${j}`;
    const wj = g.starts[j] === 0 && g.widths[j] === g.width ? 'W' : `W${j}`;
    nodes.push(node('Gemm', [s, `Z${j}`], [`dW${j}`], { transA: 1 }));
    nodes.push(node('Gemm', [s, wj], [`DZ${j}`]));
    if (j === 0) nodes.push(node('ReduceSum', [s, 'axis0'], ['DB'], { keepdims: 0 }));
  }
  const parts = [...g.widths.map((_, j) => `dW${j}`), ...(g.last < g.width ? ['ZP'] : [])];
  nodes.push(node(parts.length === 1 ? 'Identity' : 'Concat', parts, ['DW'], parts.length === 1 ? {} : { axis: 1 }));
  return onnxModel(
    'mrl-chunked-prefix-ce-grad',
    [
      ...nodes,
      ...inputsOf(g),
      ...g.widths.map((_, j) => valueInfo(11, `A${j}`, ONNX_FLOAT)),
      ...(signed ? g.widths.map((_, j) => valueInfo(11, `Sg${j}`, ONNX_FLOAT)) : []),
      ...(g.last < g.width ? [valueInfo(11, 'ZP', ONNX_FLOAT)] : []),
      valueInfo(12, 'DW', ONNX_FLOAT),
      valueInfo(12, 'DB', ONNX_FLOAT),
      ...g.widths.map((_, j) => valueInfo(12, `DZ${j}`, ONNX_FLOAT)),
    ],
    OPSETS,
  );
}

const key = (g: Geometry): string => `${g.width}|${g.starts.join(',')}|${g.last}`;

/** Reusable scratch memory outside the wasm heap: kernels run one at a time. */
class Scratch {
  #buffer = new Float32Array(0);
  #used = 0;
  reserve(total: number): void {
    if (this.#buffer.length < total) this.#buffer = new Float32Array(total);
    this.#used = 0;
  }
  take(size: number): Float32Array {
    const out = this.#buffer.subarray(this.#used, this.#used + size);
    if (out.length !== size) throw new MrlError('unsupported', 'scratch memory overrun (a bug in the chunked kernel).');
    this.#used += size;
    return out;
  }
}

/** The embedding's nesting blocks, each copied to a contiguous [N, w_j]. */
function blocks(z: Float32Array, g: Geometry, scratch: Scratch): Float32Array[] {
  return g.widths.map((w, j) => {
    const out = scratch.take(g.rows * w);
    const start = g.starts[j]!;
    for (let i = 0; i < g.rows; i++) out.set(z.subarray(i * g.width + start, i * g.width + start + w), i * w);
    return out;
  });
}

/** The inputs shared by both graphs for classes [c0, c1). */
function chunkFeeds(
  g: Geometry,
  zBlocks: Float32Array[],
  w: Float32Array,
  bias: Float32Array,
  c0: number,
  c1: number,
): Record<string, NativeArray> {
  const feeds: Record<string, NativeArray> = {
    W: { data: w.subarray(c0 * g.width, c1 * g.width), shape: [c1 - c0, g.width] },
    B: { data: bias.subarray(c0, c1), shape: [c1 - c0] },
  };
  zBlocks.forEach((data, j) => {
    feeds[`Z${j}`] = { data, shape: [g.rows, g.widths[j]!] };
  });
  return feeds;
}

export function createChunkedPrefixSoftmaxKernel(native: NativeKernels): KernelConfig {
  const scratch = new Scratch();
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<ChunkedPrefixAttrs & NamedAttrMap>;
    const embedding = input(inputs, 'embedding');
    const weight = input(inputs, 'weight');
    const biasInfo = inputs['bias'];
    const g = geometry(embedding, weight, attrs);
    const { rows, classes, width } = g;
    const k = g.widths.length;
    const losses = backend.makeOutput([k], 'float32');
    const lseOut = backend.makeOutput([k, rows], 'float32');
    // Views only after the allocations: a heap growth detaches earlier ones.
    const ids = labelsOf(backend, input(inputs, 'labels'), rows, classes);
    const z = heapF32(backend, embedding);
    const w = heapF32(backend, weight);
    const lossValues = heapF32(backend, losses);
    const lse = heapF32(backend, lseOut);
    const chunk = Math.min(attrs.chunk, Math.max(1, classes));
    const running = new Float64Array(k * rows).fill(Number.NEGATIVE_INFINITY);
    const oneDnn = native.prefixCe !== undefined && rows > 0 && classes > 0;
    scratch.reserve(oneDnn ? 0 : rows * width + k * rows + (biasInfo === undefined ? chunk : 0));
    const bias = biasInfo === undefined ? new Float32Array(0) : heapF32(backend, biasInfo);
    if (oneDnn) {
      const shape = { rows, width, classes, chunk, dims: attrs.dims };
      native.prefixCe!.forward(shape, z, w, biasInfo === undefined ? null : bias, running);
    } else if (rows > 0) {
      const zBlocks = blocks(z, g, scratch);
      const partial = scratch.take(k * rows);
      const zeros = biasInfo === undefined ? scratch.take(chunk).fill(0) : bias;
      for (let c0 = 0; c0 < classes; c0 += chunk) {
        const c1 = Math.min(classes, c0 + chunk);
        const fetches: Record<string, NativeArray> = {};
        for (let j = 0; j < k; j++)
          fetches[`R${j}`] = { data: partial.subarray(j * rows, (j + 1) * rows), shape: [rows] };
        const feeds = chunkFeeds(g, zBlocks, w, zeros, c0, c1);
        if (biasInfo === undefined) feeds['B'] = { data: zeros.subarray(0, c1 - c0), shape: [c1 - c0] };
        native.graph(`chunked-ce|${key(g)}`, () => forwardModel(g), feeds, fetches);
        for (let i = 0; i < k * rows; i++) {
          const a = running[i]!;
          const b = partial[i]!;
          const hi = Math.max(a, b);
          running[i] = hi === Number.NEGATIVE_INFINITY ? hi : hi + Math.log(Math.exp(a - hi) + Math.exp(b - hi));
        }
      }
    }
    // Each prefix's target logit, b[y] + z[:, :m_j] . W[y, :m_j], as running sums over blocks.
    let valid = 0;
    const totals = new Float64Array(k);
    for (let i = 0; i < rows; i++) {
      const y = ids[i]!;
      if (y === IGNORE_INDEX) continue;
      valid += 1;
      let target = biasInfo === undefined ? 0 : bias[y]!;
      for (let j = 0; j < k; j++) {
        const start = g.starts[j]!;
        const end = start + g.widths[j]!;
        for (let t = start; t < end; t++) target += z[i * width + t]! * w[y * width + t]!;
        totals[j] = totals[j]! + running[j * rows + i]! - target;
      }
    }
    for (let j = 0; j < k; j++) lossValues[j] = valid === 0 ? 0 : totals[j]! / valid;
    for (let i = 0; i < k * rows; i++) lse[i] = running[i]!;
    return [losses, lseOut];
  };
  return { kernelName: CHUNKED_PREFIX_CE, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

export function createChunkedPrefixSoftmaxGradKernel(native: NativeKernels): KernelConfig {
  const scratch = new Scratch();
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<ChunkedPrefixAttrs & NamedAttrMap>;
    const embedding = input(inputs, 'embedding');
    const weight = input(inputs, 'weight');
    const biasInfo = inputs['bias'];
    const g = geometry(embedding, weight, attrs);
    const { rows, classes, width, last } = g;
    const k = g.widths.length;
    const dEmbedding = backend.makeOutput([...embedding.shape], 'float32');
    const dWeight = backend.makeOutput([...weight.shape], 'float32');
    const dBias = biasInfo === undefined ? null : backend.makeOutput([classes], 'float32');
    const ids = labelsOf(backend, input(inputs, 'labels'), rows, classes);
    const dy = heapF32(backend, input(inputs, 'dy'));
    const lse = heapF32(backend, input(inputs, 'lse'));
    const z = heapF32(backend, embedding);
    const w = heapF32(backend, weight);
    const dz = heapF32(backend, dEmbedding).fill(0); // columns past the largest dim get no gradient
    const dw = heapF32(backend, dWeight);
    const chunk = Math.min(attrs.chunk, Math.max(1, classes));
    const maxWidth = Math.max(...g.widths);
    const oneDnn = native.prefixCe !== undefined;
    scratch.reserve(
      2 * k * rows + (oneDnn ? 0 : rows * width + k * rows * maxWidth + chunk * (width - last) + 2 * chunk),
    );
    const db = dBias === null ? null : heapF32(backend, dBias);
    let valid = 0;
    for (let i = 0; i < rows; i++) if (ids[i] !== IGNORE_INDEX) valid += 1;
    // Per row and prefix: c_j = dy_j / valid (0 for ignored rows), folded into the exponent.
    const shift = scratch.take(k * rows);
    const sign = scratch.take(k * rows);
    let signed = false;
    for (let j = 0; j < k; j++) {
      const c = valid === 0 ? 0 : dy[j]! / valid;
      if (c < 0) signed = true;
      for (let i = 0; i < rows; i++) {
        const ci = ids[i] === IGNORE_INDEX ? 0 : c;
        shift[j * rows + i] = ci === 0 ? Number.POSITIVE_INFINITY : lse[j * rows + i]! - Math.log(Math.abs(ci));
        sign[j * rows + i] = ci < 0 ? -1 : 1;
      }
    }
    if (rows === 0 || valid === 0) {
      dw.fill(0);
      db?.fill(0);
    } else if (oneDnn) {
      // The products write dW's nesting blocks; the columns past the last dim get no gradient.
      if (last < width) for (let c = 0; c < classes; c++) dw.fill(0, c * width + last, (c + 1) * width);
      const bias = biasInfo === undefined ? null : heapF32(backend, biasInfo);
      native.prefixCe!.backward({ rows, width, classes, chunk, dims: attrs.dims }, z, w, bias, shift, sign, dz, dw, db);
    } else {
      const zBlocks = blocks(z, g, scratch);
      const bias = biasInfo === undefined ? scratch.take(chunk).fill(0) : heapF32(backend, biasInfo);
      const dbScratch = scratch.take(chunk);
      const dzBlocks = g.widths.map((wj) => scratch.take(rows * wj));
      const pad = last < width ? scratch.take(chunk * (width - last)).fill(0) : null;
      for (let c0 = 0; c0 < classes; c0 += chunk) {
        const c1 = Math.min(classes, c0 + chunk);
        const n = c1 - c0;
        const feeds = chunkFeeds(g, zBlocks, w, bias, c0, c1);
        if (biasInfo === undefined) feeds['B'] = { data: bias.subarray(0, n), shape: [n] };
        for (let j = 0; j < k; j++) {
          feeds[`A${j}`] = { data: shift.subarray(j * rows, (j + 1) * rows), shape: [rows, 1] };
          if (signed) feeds[`Sg${j}`] = { data: sign.subarray(j * rows, (j + 1) * rows), shape: [rows, 1] };
        }
        if (pad !== null) feeds['ZP'] = { data: pad.subarray(0, n * (width - last)), shape: [n, width - last] };
        const fetches: Record<string, NativeArray> = {
          DW: { data: dw.subarray(c0 * width, c1 * width), shape: [n, width] },
          DB: { data: db === null ? dbScratch.subarray(0, n) : db.subarray(c0, c1), shape: [n] },
        };
        g.widths.forEach((wj, j) => {
          fetches[`DZ${j}`] = { data: dzBlocks[j]!, shape: [rows, wj] };
        });
        native.graph(`chunked-ce-grad|${key(g)}|${Number(signed)}`, () => gradientModel(g, signed), feeds, fetches);
        g.widths.forEach((wj, j) => {
          const part = dzBlocks[j]!;
          const start = g.starts[j]!;
          for (let i = 0; i < rows; i++) {
            const row = i * width + start;
            for (let t = 0; t < wj; t++) dz[row + t] = dz[row + t]! + part[i * wj + t]!;
          }
        });
      }
    }
    if (rows > 0 && valid > 0) {
      // The one-hot part: row i's target class y gets -sum_{j' >= j} c_j' on every prefix block j.
      for (let i = 0; i < rows; i++) {
        const y = ids[i]!;
        if (y === IGNORE_INDEX) continue;
        let suffix = 0;
        for (let j = k - 1; j >= 0; j--) {
          suffix += dy[j]! / valid;
          const start = g.starts[j]!;
          const end = start + g.widths[j]!;
          for (let t = start; t < end; t++) {
            dz[i * width + t] = dz[i * width + t]! - suffix * w[y * width + t]!;
            dw[y * width + t] = dw[y * width + t]! - suffix * z[i * width + t]!;
          }
          if (j === 0 && db !== null) db[y] = db[y]! - suffix;
        }
      }
    }
    return dBias === null ? [dEmbedding, dWeight] : [dEmbedding, dWeight, dBias];
  };
  return { kernelName: CHUNKED_PREFIX_CE_GRAD, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

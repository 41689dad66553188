// Why: the Matryoshka loss of a shared head is k softmax cross-entropies over running-sum
// logits. As tensor ops that is ~10 kernels per nesting dim forward and as many backward, each
// a TF.js dispatch and a pass over [N, C]; with few classes the dispatches dominate (the MLP's
// head cost 1.2x a plain head), with a vocabulary the passes do. These two kernels do the whole
// loss and its gradient in native calls on scratch buffers:
//   forward:  L_j = L_{j-1} + z_j @ W_j (one GEMM with accumulate), P_j = softmax(L_j), loss_j;
//   backward: S_j = S_{j+1} + dy_j / N * (P_j - onehot), the gradient of L_j summed over the
//             prefixes that contain chunk j; dW_j = z_j^T S_j, dz_j = S_j W_j^T, db = colsum(S_1).
// With at most PREFIX_CE_FEW_MAX_CLASSES classes and the oneDNN addon built, each kernel is one
// addon call (`native.prefixCeFew`, native/prefix_ce_few.cc): the calls below, a product and a
// softmax per nesting dim, cost the MLP's seven-dim head 3.3-4.7 ms of a 16-20 ms step at one
// thread.
// `prefixSoftmaxCrossEntropy` (core's ops/prefix-softmax-ce.ts) uses them where registered.
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import {
  type OneDnnPrefixCeFew,
  PREFIX_CE_FEW_MAX_CLASSES,
  type PrefixCeFewShape,
} from '../native/onednn_prefix_few.js';
import { checkLabels, mean } from './native_softmax_ce.js';
import { dim, heapF32, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Inputs embedding [N, D], weight, bias? [C], labels [N] int32; outputs [losses [k], probs [k, N, C]]. */
export const PREFIX_SOFTMAX_CE = 'MrlPrefixSoftmaxCrossEntropy';
/** Inputs dy [k], probs, labels, embedding, weight; outputs [dEmbedding, dWeight, dBias?]. */
export const PREFIX_SOFTMAX_CE_GRAD = 'MrlPrefixSoftmaxCrossEntropyGrad';

export interface PrefixSoftmaxAttrs {
  /** Ascending nesting dims, each <= D. */
  dims: number[];
  /** Weight as [C, D] (a tied token table) instead of [D, C]. */
  classesFirst: boolean;
  /** Whether there is a bias (for the gradient kernel, whose inputs do not show it). */
  hasBias: boolean;
}

/** Reusable scratch memory outside the wasm heap: kernels run one at a time. */
class Scratch {
  #buffer = new Float32Array(0);
  #used = 0;
  /** Resets, then makes room for `total` floats (taken in pieces by `take`). */
  reserve(total: number): void {
    if (this.#buffer.length < total) this.#buffer = new Float32Array(total);
    this.#used = 0;
  }
  take(size: number): Float32Array {
    const out = this.#buffer.subarray(this.#used, this.#used + size);
    if (out.length !== size)
      throw new MrlError('unsupported', 'scratch memory overrun (a bug in the prefix softmax kernel).');
    this.#used += size;
    return out;
  }
}

interface Geometry {
  rows: number;
  width: number; // D
  classes: number;
  starts: number[];
  widths: number[];
}

function geometry(embedding: TensorInfo, weight: TensorInfo, attrs: PrefixSoftmaxAttrs): Geometry {
  const [rows, width] = [dim(embedding.shape, 0), dim(embedding.shape, 1)];
  const classes = dim(weight.shape, attrs.classesFirst ? 0 : 1);
  if (dim(weight.shape, attrs.classesFirst ? 1 : 0) !== width) {
    throw new MrlError(
      'invalid-argument',
      `${PREFIX_SOFTMAX_CE}: weight [${weight.shape.join(', ')}] does not match embedding width ${width}.`,
    );
  }
  const starts: number[] = [];
  const widths: number[] = [];
  attrs.dims.forEach((m, j) => {
    const start = j === 0 ? 0 : attrs.dims[j - 1]!;
    if (!(m > start && m <= width))
      throw new MrlError(
        'invalid-argument',
        `${PREFIX_SOFTMAX_CE}: dims [${attrs.dims.join(', ')}] are not ascending within 1..${width}.`,
      );
    starts.push(start);
    widths.push(m - start);
  });
  return { rows, width, classes, starts, widths };
}

/** The addon's few-class head and the problem's shape, where the addon has it and the classes are few. */
function fewClassHead(
  native: NativeKernels,
  g: Geometry,
  attrs: PrefixSoftmaxAttrs,
): { head: OneDnnPrefixCeFew; shape: PrefixCeFewShape } | undefined {
  if (native.prefixCeFew === undefined || g.classes > PREFIX_CE_FEW_MAX_CLASSES) return undefined;
  const shape = {
    rows: g.rows,
    width: g.width,
    classes: g.classes,
    classesFirst: attrs.classesFirst,
    dims: attrs.dims,
  };
  return { head: native.prefixCeFew, shape };
}

/** Columns [start, start + w) of a row-major [rows, width] matrix, as a contiguous [rows, w]. */
function columns(
  src: Float32Array,
  rows: number,
  width: number,
  start: number,
  w: number,
  out: Float32Array,
): Float32Array {
  for (let i = 0; i < rows; i++) out.set(src.subarray(i * width + start, i * width + start + w), i * w);
  return out;
}

/** Column blocks of a classes-first [C, D] weight, one [C, w_j] per chunk (and the unused tail). */
function weightChunks(native: NativeKernels, w: Float32Array, g: Geometry, scratch: Scratch): Float32Array[] {
  const last = g.starts[g.starts.length - 1]! + g.widths[g.widths.length - 1]!;
  const sizes = last < g.width ? [...g.widths, g.width - last] : g.widths;
  if (sizes.length === 1) return [w]; // one chunk: the table itself
  const parts = sizes.map((s) => scratch.take(g.classes * s));
  native.split(w, [g.classes, g.width], 1, sizes, parts);
  return parts.slice(0, g.widths.length);
}

/**
 * Each chunk's operands: z's columns [start, start + w) copied to a contiguous [N, w], and W's
 * rows of the chunk (views of W) or, classes-first, its columns (split copies).
 */
function chunkOperands(
  native: NativeKernels,
  z: Float32Array,
  w: Float32Array,
  g: Geometry,
  classesFirst: boolean,
  scratch: Scratch,
): { zChunks: Float32Array[]; wChunks: Float32Array[] } {
  const zChunks = g.widths.map((wj, j) => columns(z, g.rows, g.width, g.starts[j]!, wj, scratch.take(g.rows * wj)));
  const wChunks = classesFirst
    ? weightChunks(native, w, g, scratch)
    : g.widths.map((wj, j) => w.subarray(g.starts[j]! * g.classes, (g.starts[j]! + wj) * g.classes));
  return { zChunks, wChunks };
}

function labelsOf(backend: BackendWasm, labels: TensorInfo, rows: number, classes: number): Int32Array {
  if (labels.dtype !== 'int32' || labels.shape.length !== 1 || dim(labels.shape, 0) !== rows) {
    throw new MrlError(
      'invalid-argument',
      `${PREFIX_SOFTMAX_CE}: labels must be int32 [${rows}], got ${labels.dtype} [${labels.shape.join(', ')}].`,
    );
  }
  const ids = backend.typedArrayFromHeap(labels) as Int32Array;
  checkLabels(ids, classes);
  return ids;
}

export function createPrefixSoftmaxKernel(native: NativeKernels): KernelConfig {
  const scratch = new Scratch();
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<PrefixSoftmaxAttrs & NamedAttrMap>;
    const embedding = input(inputs, 'embedding');
    const weight = input(inputs, 'weight');
    const bias = inputs['bias'];
    const g = geometry(embedding, weight, attrs);
    const { rows, classes } = g;
    const k = g.widths.length;
    const losses = backend.makeOutput([k], 'float32');
    const probs = backend.makeOutput([k, rows, classes], 'float32');
    // Views only after the allocations: a heap growth detaches earlier ones.
    const ids = labelsOf(backend, input(inputs, 'labels'), rows, classes);
    const z = heapF32(backend, embedding);
    const w = heapF32(backend, weight);
    const p = heapF32(backend, probs);
    const lossValues = heapF32(backend, losses);
    const few = fewClassHead(native, g, attrs);
    if (few !== undefined) {
      few.head.forward(few.shape, z, w, bias === undefined ? null : heapF32(backend, bias), ids, p, lossValues);
      return [losses, probs];
    }
    scratch.reserve(2 * rows * classes + rows * g.width + (attrs.classesFirst ? classes * g.width : 0) + rows);
    const logits = [scratch.take(rows * classes), scratch.take(rows * classes)];
    const rowLoss = scratch.take(rows);
    const { zChunks, wChunks } = chunkOperands(native, z, w, g, attrs.classesFirst, scratch);
    for (let j = 0; j < k; j++) {
      const out = logits[j % 2]!;
      const previous = j === 0 ? (bias === undefined ? null : heapF32(backend, bias)) : logits[(j + 1) % 2]!;
      const bShape: [number, number] = attrs.classesFirst ? [classes, g.widths[j]!] : [g.widths[j]!, classes];
      native.gemm(
        zChunks[j]!,
        [rows, g.widths[j]!],
        wChunks[j]!,
        bShape,
        previous,
        j === 0 ? [classes] : [rows, classes],
        out,
        false,
        attrs.classesFirst,
      );
      native.softmaxCrossEntropy(
        out,
        [rows, classes],
        ids,
        p.subarray(j * rows * classes, (j + 1) * rows * classes),
        rowLoss,
      );
      lossValues[j] = mean(rowLoss);
    }
    return [losses, probs];
  };
  return { kernelName: PREFIX_SOFTMAX_CE, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

export function createPrefixSoftmaxGradKernel(native: NativeKernels): KernelConfig {
  const scratch = new Scratch();
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<PrefixSoftmaxAttrs & NamedAttrMap>;
    const embedding = input(inputs, 'embedding');
    const weight = input(inputs, 'weight');
    const g = geometry(embedding, weight, attrs);
    const { rows, classes } = g;
    const k = g.widths.length;
    const dEmbedding = backend.makeOutput([...embedding.shape], 'float32');
    const dWeight = backend.makeOutput([...weight.shape], 'float32');
    const dBias = attrs.hasBias ? backend.makeOutput([classes], 'float32') : null;
    const ids = labelsOf(backend, input(inputs, 'labels'), rows, classes);
    const dy = heapF32(backend, input(inputs, 'dy'));
    const p = heapF32(backend, input(inputs, 'probs'));
    const z = heapF32(backend, embedding);
    const w = heapF32(backend, weight);
    const dz = heapF32(backend, dEmbedding);
    const dw = heapF32(backend, dWeight);
    const few = fewClassHead(native, g, attrs);
    if (few !== undefined) {
      few.head.backward(few.shape, dy, p, ids, z, w, dz, dw, dBias === null ? null : heapF32(backend, dBias));
      return dBias === null ? [dEmbedding, dWeight] : [dEmbedding, dWeight, dBias];
    }
    dz.fill(0); // columns past the largest dim get no gradient
    dw.fill(0);
    const maxWidth = Math.max(...g.widths);
    scratch.reserve(
      2 * rows * classes + rows * g.width + rows * maxWidth + (attrs.classesFirst ? 2 * classes * g.width : 0),
    );
    const sums = [scratch.take(rows * classes), scratch.take(rows * classes)];
    const { zChunks, wChunks } = chunkOperands(native, z, w, g, attrs.classesFirst, scratch);
    const dzChunk = scratch.take(rows * maxWidth);
    // One chunk over the whole table: its gradient is written in place, with no concatenation.
    const whole = attrs.classesFirst && k === 1 && g.widths[0] === g.width;
    const dwChunks = attrs.classesFirst ? (whole ? [dw] : g.widths.map((wj) => scratch.take(classes * wj))) : [];
    let s = sums[0]!;
    for (let j = k - 1; j >= 0; j--) {
      const factor = rows === 0 ? 0 : dy[j]! / rows;
      const pj = p.subarray(j * rows * classes, (j + 1) * rows * classes);
      const next = sums[j % 2]!;
      if (j === k - 1) native.scale(pj, factor, next);
      else native.scaleAdd(pj, factor, s, next);
      for (let i = 0; i < rows; i++) next[i * classes + ids[i]!]! -= factor;
      s = next;
      const wj = g.widths[j]!;
      const zj = zChunks[j]!;
      if (attrs.classesFirst) {
        native.gemm(s, [rows, classes], zj, [rows, wj], null, [], dwChunks[j]!, true, false); // [C, w]
        native.gemm(
          s,
          [rows, classes],
          wChunks[j]!,
          [classes, wj],
          null,
          [],
          dzChunk.subarray(0, rows * wj),
          false,
          false,
        ); // [N, w]
      } else {
        const start = g.starts[j]! * classes;
        native.gemm(
          zj,
          [rows, wj],
          s,
          [rows, classes],
          null,
          [],
          dw.subarray(start, start + wj * classes),
          true,
          false,
        ); // [w, C]
        native.gemm(
          s,
          [rows, classes],
          wChunks[j]!,
          [wj, classes],
          null,
          [],
          dzChunk.subarray(0, rows * wj),
          false,
          true,
        ); // [N, w]
      }
      const start = g.starts[j]!;
      for (let i = 0; i < rows; i++) dz.set(dzChunk.subarray(i * wj, (i + 1) * wj), i * g.width + start);
    }
    if (attrs.classesFirst && !whole) {
      const last = g.starts[k - 1]! + g.widths[k - 1]!;
      const parts = last < g.width ? [...dwChunks, scratch.take(classes * (g.width - last)).fill(0)] : dwChunks;
      const widths = last < g.width ? [...g.widths, g.width - last] : g.widths;
      if (parts.length === 1) dw.set(parts[0]!);
      else
        native.concat(
          parts,
          widths.map((wj) => [classes, wj]),
          1,
          dw,
          [classes, g.width],
        );
    }
    if (dBias !== null) native.sum(s, [rows, classes], [0], heapF32(backend, dBias));
    return dBias === null ? [dEmbedding, dWeight] : [dEmbedding, dWeight, dBias];
  };
  return { kernelName: PREFIX_SOFTMAX_CE_GRAD, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

// Why: the chunked Matryoshka softmax cross-entropy (`../wasm/native_chunked_prefix_softmax.ts`)
// ran each vocabulary chunk as one ONNX Runtime graph: products on MLAS and the per-prefix
// LogSoftmax / Exp / Add as separate passes. With the rest of BERT-mini's products on oneDNN the
// Matryoshka head cost 1.14x a plain one at 1 thread. `native/onednn_prefix_ce.cc` (in the same
// optional addon) runs the same chunks with the products on oneDNN, reading and writing the
// nesting blocks in place, and the per-prefix work fused into one vectorised pass per row.
// Optional like the products: without the addon (or with one built before this file) the
// kernels keep their ONNX Runtime graphs.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** The addon's functions (native/onednn_prefix_ce.cc). */
interface OneDnnPrefixCeAddon extends OneDnnAddon {
  /** dims: [threads, rows, width, classes, chunk, k, dim_1 .. dim_k]. */
  prefixCeForward(dims: Int32Array, z: Float32Array, w: Float32Array, bias: Float32Array, lse: Float64Array): void;
  prefixCeBackward(
    dims: Int32Array,
    z: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    shift: Float32Array,
    sign: Float32Array,
    dz: Float32Array,
    dw: Float32Array,
    db: Float32Array,
  ): void;
}

/** One chunked problem: embedding [rows, width], table [classes, width], ascending `dims`. */
export interface PrefixCeShape {
  rows: number;
  width: number;
  classes: number;
  /** Classes per chunk. */
  chunk: number;
  /** Ascending nesting dims, each within 1..width. */
  dims: readonly number[];
}

/** The chunked Matryoshka softmax cross-entropy's two passes on oneDNN. */
export interface OneDnnPrefixCe {
  /** `oneDNN 2.6.3`, for logs. */
  readonly detail: string;
  /**
   * `lse[j * rows + i]` = log-sum-exp over all classes of row i's logits in prefix j,
   * `z[i, :m_j] . w[:, :m_j] + bias` (no bias when null). Every size must be positive.
   */
  forward(shape: PrefixCeShape, z: Float32Array, w: Float32Array, bias: Float32Array | null, lse: Float64Array): void;
  /**
   * With S_j = sum_{j' >= j} sign_j' exp(L_j' - shift_j') (shift_j' = +inf: nothing), per chunk:
   * adds S_j W[:, block j] into dz's block j (the caller zeroes dz), writes S_j^T z[:, block j]
   * into dw's block j (columns past the last dim are left alone) and colsum(S_0) into db.
   * shift and sign are [k * rows]: prefix j's entries first.
   */
  backward(
    shape: PrefixCeShape,
    z: Float32Array,
    w: Float32Array,
    bias: Float32Array | null,
    shift: Float32Array,
    sign: Float32Array,
    dz: Float32Array,
    dw: Float32Array,
    db: Float32Array | null,
  ): void;
}

function loadPrefixCeAddon(): OneDnnPrefixCeAddon | undefined {
  const lib = loadAddon() as Partial<OneDnnPrefixCeAddon> | undefined;
  return typeof lib?.prefixCeForward === 'function' && typeof lib.prefixCeBackward === 'function'
    ? (lib as OneDnnPrefixCeAddon)
    : undefined;
}

/** Whether the oneDNN addon is built with the chunked head and loads here. */
export function oneDnnPrefixCeAvailable(): boolean {
  return loadPrefixCeAddon() !== undefined;
}

const NONE = new Float32Array(0);

/**
 * The chunked head's passes on oneDNN, on `threads` OpenMP threads (each call sets its count and
 * restores the previous one); `undefined` when the addon is not built, does not load, predates
 * the head, or is turned off (`MRL_ONEDNN=off`); with `required`, that is an `MrlError` instead.
 *
 * @example
 * const head = loadOneDnnPrefixCe({ threads: 1 });
 * head?.forward({ rows: 154, width: 256, classes: 30522, chunk: 512, dims: [8, 16, 32, 64, 128, 256] }, z, w, b, lse);
 */
export function loadOneDnnPrefixCe(options: { threads: number; required?: boolean }): OneDnnPrefixCe | undefined {
  const lib = loadPrefixCeAddon();
  if (lib === undefined) {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "chunkedHead 'onednn' needs the oneDNN addon with the chunked head (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates it or is turned off (MRL_ONEDNN=off).",
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose chunkedHead onnxruntime.',
    );
  }
  const dimsOf = (s: PrefixCeShape): Int32Array =>
    Int32Array.from([options.threads, s.rows, s.width, s.classes, s.chunk, s.dims.length, ...s.dims]);
  return {
    detail: `oneDNN ${lib.version()}`,
    forward(shape, z, w, bias, lse) {
      lib.prefixCeForward(dimsOf(shape), z, w, bias ?? NONE, lse);
    },
    backward(shape, z, w, bias, shift, sign, dz, dw, db) {
      lib.prefixCeBackward(dimsOf(shape), z, w, bias ?? NONE, shift, sign, dz, dw, db ?? NONE);
    },
  };
}

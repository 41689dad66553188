// Why: the Matryoshka softmax cross-entropy of a head with few classes (`../wasm/native_prefix_softmax.ts`:
// the vision and MLP heads) ran as a product and a softmax per nesting dim forward and a scale and
// two products per dim backward, each an ONNX Runtime call: with seven dims the calls, not the
// arithmetic, made the MLP's Matryoshka step 1.15x a plain one at one thread.
// `native/prefix_ce_few.cc`, in the same optional addon, does the whole loss in one call and its
// whole gradient in another, with every value summed in a fixed order (the same bits on any CPU
// and thread count). Without the addon (or with one built before that file) the kernels keep
// their ONNX Runtime calls.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** Most classes the addon's loops take; past it, a product per prefix pays for its call. */
export const PREFIX_CE_FEW_MAX_CLASSES = 128;

/** The addon's functions (native/prefix_ce_few.cc). */
interface PrefixCeFewAddon extends OneDnnAddon {
  /** dims: [threads, rows, width, classes, classesFirst, k, dim_1 .. dim_k]. */
  prefixCeFewForward(
    dims: Int32Array,
    z: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    labels: Int32Array,
    probs: Float32Array,
    losses: Float32Array,
  ): void;
  prefixCeFewBackward(
    dims: Int32Array,
    dy: Float32Array,
    probs: Float32Array,
    labels: Int32Array,
    z: Float32Array,
    w: Float32Array,
    dz: Float32Array,
    dw: Float32Array,
    db: Float32Array,
  ): void;
}

/** One problem: embedding [rows, width], weight [width, classes] or classes first [classes, width]. */
export interface PrefixCeFewShape {
  rows: number;
  width: number;
  /** 1 .. PREFIX_CE_FEW_MAX_CLASSES. */
  classes: number;
  classesFirst: boolean;
  /** Ascending nesting dims, each within 1..width. */
  dims: readonly number[];
}

/** The few-class Matryoshka softmax cross-entropy on the addon. */
export interface OneDnnPrefixCeFew {
  /** For logs. */
  readonly detail: string;
  /**
   * probs [k, rows, classes]: softmax of prefix j's logits `z[i, :m_j] . w[:m_j] + bias`;
   * losses [k]: the mean over rows of each prefix's cross-entropy (NaN with no rows). Labels must
   * be within [0, classes).
   */
  forward(
    shape: PrefixCeFewShape,
    z: Float32Array,
    w: Float32Array,
    bias: Float32Array | null,
    labels: Int32Array,
    probs: Float32Array,
    losses: Float32Array,
  ): void;
  /**
   * The gradients of `sum_j dy[j] losses[j]` from the forward's probs: dz [rows, width] (zero past
   * the last dim), dw in w's layout (zero past the last dim), db [classes] when not null.
   */
  backward(
    shape: PrefixCeFewShape,
    dy: Float32Array,
    probs: Float32Array,
    labels: Int32Array,
    z: Float32Array,
    w: Float32Array,
    dz: Float32Array,
    dw: Float32Array,
    db: Float32Array | null,
  ): void;
}

const NONE = new Float32Array(0);

/**
 * The few-class head on the addon's `threads` OpenMP threads; `undefined` when the addon is not
 * built, does not load, predates it or is turned off (`MRL_ONEDNN=off`); with `required`, that is
 * an `MrlError` instead.
 *
 * @example
 * const head = loadOneDnnPrefixCeFew({ threads: 1 });
 * head?.forward({ rows: 256, width: 512, classes: 10, classesFirst: false, dims: [8, 16, 512] }, z, w, b, y, p, l);
 */
export function loadOneDnnPrefixCeFew(options: { threads: number; required?: boolean }): OneDnnPrefixCeFew | undefined {
  const lib = loadAddon() as Partial<PrefixCeFewAddon> | undefined;
  if (typeof lib?.prefixCeFewForward !== 'function' || typeof lib.prefixCeFewBackward !== 'function') {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "fewClassHead 'onednn' needs the oneDNN addon with the few-class head (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates it or is turned off (MRL_ONEDNN=off).",
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose fewClassHead onnxruntime.',
    );
  }
  const addon = lib as PrefixCeFewAddon;
  const dimsOf = (s: PrefixCeFewShape): Int32Array =>
    Int32Array.from([options.threads, s.rows, s.width, s.classes, s.classesFirst ? 1 : 0, s.dims.length, ...s.dims]);
  return {
    detail: 'oneDNN addon',
    forward(shape, z, w, bias, labels, probs, losses) {
      addon.prefixCeFewForward(dimsOf(shape), z, w, bias ?? NONE, labels, probs, losses);
    },
    backward(shape, dy, probs, labels, z, w, dz, dw, db) {
      addon.prefixCeFewBackward(dimsOf(shape), dy, probs, labels, z, w, dz, dw, db ?? NONE);
    },
  };
}

// Why: about 70% of a ViT-tiny training step is products, which ONNX Runtime runs on MLAS's
// SGEMM; PyTorch runs them on MKL/oneDNN. The oneDNN addon (`native/onednn_matmul.cc`, built
// into the same `onednn.node` as the convolutions) has oneDNN's matmul primitive with the
// native kernels' `matMul` semantics: transposes and batch broadcasting as strides, nothing
// copied. Optional like the convolutions: without the addon (or with an addon built before it
// had products) `loadOneDnnMatMul` returns undefined and the products stay on ONNX Runtime.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';
import type { NativeKernels } from './onnxruntime.js';

/** The addon's product functions (native/onednn_matmul.cc). */
interface OneDnnMatMulAddon extends OneDnnAddon {
  /** dims: [threads, transposeA, transposeB, rank, aShape, bShape], shapes padded to rank. */
  matmul(dims: Int32Array, a: Float32Array, b: Float32Array, y: Float32Array): void;
  matmulImpl(dims: Int32Array): string;
}

/** oneDNN's matmul takes at most 12 axes. */
const MAX_RANK = 12;

/** {@link NativeKernels.matMul} on oneDNN. */
export type OneDnnMatMul = Pick<NativeKernels, 'matMul'> & {
  /** `oneDNN 2.6.3`, for the backend's log line. */
  readonly detail: string;
  /** The implementation oneDNN picked for a product (`brg:avx512_core`...), for benches. */
  implementation(
    aShape: readonly number[],
    bShape: readonly number[],
    transposeA: boolean,
    transposeB: boolean,
  ): string;
};

/** The addon, where it is built and has the products. */
function loadMatMulAddon(): OneDnnMatMulAddon | undefined {
  const lib = loadAddon() as Partial<OneDnnMatMulAddon> | undefined;
  return typeof lib?.matmul === 'function' ? (lib as OneDnnMatMulAddon) : undefined;
}

/** Whether the oneDNN addon is built with its products and loads here. */
export function oneDnnMatMulAvailable(): boolean {
  return loadMatMulAddon() !== undefined;
}

/** The addon's dims for one product, or undefined for a rank oneDNN does not take. */
function matMulDims(
  threads: number,
  aShape: readonly number[],
  bShape: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): Int32Array | undefined {
  const rank = Math.max(aShape.length, bShape.length);
  if (aShape.length < 2 || bShape.length < 2 || rank > MAX_RANK) return;
  const d = new Int32Array(4 + 2 * rank).fill(1);
  d.set([threads, Number(transposeA), Number(transposeB), rank]);
  d.set(aShape, 4 + rank - aShape.length);
  d.set(bShape, 4 + 2 * rank - bShape.length);
  return d;
}

/**
 * `matMul` on oneDNN's matmul primitive, on `threads` OpenMP threads (each call sets its own
 * count and restores the previous one); `fallback`'s (ONNX Runtime's) for a rank above 12.
 * `undefined` when the addon is not built, does not load, or was built without the products;
 * with `required`, that is an `MrlError` instead.
 *
 * @example
 * const products = loadOneDnnMatMul({ threads: 1, fallback: ort });
 * products?.matMul(a, [1040, 192], w, [192, 768], y, [1040, 768], false, false);
 */
export function loadOneDnnMatMul(options: {
  threads: number;
  fallback: Pick<NativeKernels, 'matMul'>;
  required?: boolean;
}): OneDnnMatMul | undefined {
  const lib = loadMatMulAddon();
  if (lib === undefined) {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "matmul 'onednn' needs the oneDNN addon with its products (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose matmul onnxruntime.',
    );
  }
  const { fallback, threads } = options;
  return {
    detail: `oneDNN ${lib.version()}`,
    matMul(a, aShape, b, bShape, y, yShape, transposeA, transposeB) {
      if (y.length === 0) return;
      if (a.length === 0 || b.length === 0) {
        y.fill(0); // an empty reduction
        return;
      }
      const d = matMulDims(threads, aShape, bShape, transposeA, transposeB);
      if (d === undefined) return fallback.matMul(a, aShape, b, bShape, y, yShape, transposeA, transposeB);
      lib.matmul(d, a, b, y);
    },
    implementation(aShape, bShape, transposeA, transposeB) {
      const d = matMulDims(threads, aShape, bShape, transposeA, transposeB);
      return d === undefined ? 'onnxruntime (rank above 12)' : lib.matmulImpl(d);
    },
  };
}

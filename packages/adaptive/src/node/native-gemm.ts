import { loadOnnxRuntimeKernels } from '@mrl/kernels/native';
import type { Gemm } from '../gemm.js';

/**
 * The GEMM the training kernels use (ONNX Runtime's MLAS, from the `onnxruntime-node` package
 * core installs), as a {@link Gemm} for `MatryoshkaIndex`; `undefined` when it does not load on
 * this platform (the index then scans in JavaScript). `threads` defaults to 1.
 *
 * @example
 * ```ts
 * const index = MatryoshkaIndex.fromVectors(vectors, { dim: 256, gemm: nativeGemm() });
 * ```
 */
export function nativeGemm(options: { threads?: number } = {}): Gemm | undefined {
  const kernels = loadOnnxRuntimeKernels(options.threads === undefined ? {} : { threads: options.threads });
  if (kernels === undefined) return undefined;
  return {
    name: kernels.detail,
    multiplyTransposed(a, aRows, b, bRows, dim, y) {
      if (aRows === 0 || bRows === 0) return;
      kernels.matMul(
        a.subarray(0, aRows * dim),
        [aRows, dim],
        b.subarray(0, bRows * dim),
        [bRows, dim],
        y.subarray(0, aRows * bRows),
        [aRows, bRows],
        false,
        true,
      );
    },
  };
}

// Why: a JavaScript scan runs at ~1.5 GFLOP/s and even a perfect JS top-k pass reads every score
// once more; ONNX Runtime's MLAS runs the product at ~70 GFLOP/s on one thread (AVX2/AVX-512 FMA)
// and its TopK selects inside the same native call, so a full scan costs about one GEMM. The
// `onnxruntime-node` package ships the CPU binary prebuilt (its install script, which pnpm is
// told to skip, only fetches CUDA extras). It is an optional dependency: where it does not
// load, `nativeGemm()` is undefined and the index scans in JavaScript.
import { createRequire } from 'node:module';
import { MrlError } from '@mrl/core/errors';
import type { Gemm } from '../gemm.js';
import { node, ONNX_FLOAT, ONNX_INT64, onnxModel, valueInfo } from '@mrl/kernels/onnx-proto';

interface OrtTensorConstructor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): unknown;
  new (type: 'int64', data: BigInt64Array, dims: readonly number[]): unknown;
}
interface OrtNativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): unknown;
}
interface OrtBinding {
  binding: { InferenceSession: new () => OrtNativeSession };
  initOrt(): void;
}

const OPSETS = { '': 13, 'com.microsoft': 1 };

/** `Y[nq, nr] = Q[nq, d] @ X[nr, d]^T` (ONNX Runtime's contrib FusedMatMul with transB). */
function productModel(): Uint8Array {
  return onnxModel(
    'mrl-scan-product',
    [
      node('FusedMatMul', ['Q', 'X'], ['Y'], { transA: 0, transB: 1 }, 'com.microsoft'),
      valueInfo(11, 'Q', ONNX_FLOAT, ['nq', 'd']),
      valueInfo(11, 'X', ONNX_FLOAT, ['nr', 'd']),
      valueInfo(12, 'Y', ONNX_FLOAT, ['nq', 'nr']),
    ],
    OPSETS,
  );
}

/**
 * Per query, the K best of `(Q @ X^T) * R` (R: one scale per row of X, e.g. 1/||x||; left out
 * when `scaled` is false): values V and column indices I, best first, ties to the lower index
 * (ONNX TopK's documented order, which is the index's own).
 */
function scanTopKModel(scaled: boolean): Uint8Array {
  return onnxModel(
    'mrl-scan-topk',
    [
      node('FusedMatMul', ['Q', 'X'], [scaled ? 'P' : 'S'], { transA: 0, transB: 1 }, 'com.microsoft'),
      ...(scaled ? [node('Mul', ['P', 'R'], ['S'])] : []),
      node('TopK', ['S', 'K'], ['V', 'I'], { axis: 1, largest: 1, sorted: 1 }),
      valueInfo(11, 'Q', ONNX_FLOAT, ['nq', 'd']),
      valueInfo(11, 'X', ONNX_FLOAT, ['nr', 'd']),
      ...(scaled ? [valueInfo(11, 'R', ONNX_FLOAT, ['nr'])] : []),
      valueInfo(11, 'K', ONNX_INT64, [1]),
      valueInfo(12, 'V', ONNX_FLOAT, ['nq', 'k']),
      valueInfo(12, 'I', ONNX_INT64, ['nq', 'k']),
    ],
    OPSETS,
  );
}

/**
 * ONNX Runtime's MLAS product (and fused product + top-k) as a {@link Gemm} for
 * `MatryoshkaIndex`; `undefined` when `onnxruntime-node` is not installed or does not load on
 * this platform (the index then scans in JavaScript). `threads` defaults to 1. Calls are
 * synchronous: the binding runs on views of the caller's arrays, outputs written in place.
 *
 * @example
 * ```ts
 * const index = MatryoshkaIndex.fromVectors(vectors, { dim: 256, gemm: nativeGemm() });
 * ```
 */
export function nativeGemm(options: { threads?: number } = {}): Gemm | undefined {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new MrlError('invalid-argument', `native GEMM threads must be a positive integer, got ${String(threads)}.`);
  }
  let ort: OrtBinding;
  let Tensor: OrtTensorConstructor;
  let version: string;
  try {
    const requireOrt = createRequire(createRequire(import.meta.url).resolve('onnxruntime-node'));
    // The public session API is asynchronous (it defers to setImmediate); its native binding is not.
    ort = requireOrt('./binding.js') as OrtBinding;
    Tensor = (requireOrt('onnxruntime-common') as { Tensor: OrtTensorConstructor }).Tensor;
    version = (requireOrt('../package.json') as { version: string }).version;
    ort.initOrt();
  } catch {
    return undefined;
  }
  const sessions = new Map<string, OrtNativeSession>();
  const session = (key: string, model: () => Uint8Array): OrtNativeSession => {
    let s = sessions.get(key);
    if (s === undefined) {
      s = new ort.binding.InferenceSession();
      const bytes = model();
      s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        enableMemPattern: false, // shapes change from call to call
      });
      sessions.set(key, s);
    }
    return s;
  };
  const kTensor = new BigInt64Array(1);
  return {
    name: `ONNX Runtime ${version} (MLAS), ${threads} thread${threads === 1 ? '' : 's'}`,
    multiplyTransposed(a, aRows, b, bRows, dim, y) {
      if (aRows === 0 || bRows === 0) return;
      session('product', productModel).run(
        {
          Q: new Tensor('float32', a.subarray(0, aRows * dim), [aRows, dim]),
          X: new Tensor('float32', b.subarray(0, bRows * dim), [bRows, dim]),
        },
        { Y: new Tensor('float32', y.subarray(0, aRows * bRows), [aRows, bRows]) },
        {},
      );
    },
    multiplyTopK(a, aRows, b, bRows, dim, k, scale, values, indices) {
      if (aRows === 0 || bRows === 0) return;
      if (!Number.isInteger(k) || k < 1 || k > bRows) {
        throw new MrlError('invalid-argument', `multiplyTopK needs 1 <= k <= ${bRows} rows, got k = ${k}`);
      }
      kTensor[0] = BigInt(k);
      const feeds: Record<string, unknown> = {
        Q: new Tensor('float32', a.subarray(0, aRows * dim), [aRows, dim]),
        X: new Tensor('float32', b.subarray(0, bRows * dim), [bRows, dim]),
        K: new Tensor('int64', kTensor, [1]),
      };
      if (scale !== undefined) feeds.R = new Tensor('float32', scale.subarray(0, bRows), [bRows]);
      session(scale === undefined ? 'topk' : 'topk-scaled', () => scanTopKModel(scale !== undefined)).run(
        feeds,
        {
          V: new Tensor('float32', values.subarray(0, aRows * k), [aRows, k]),
          I: new Tensor('int64', indices.subarray(0, aRows * k), [aRows, k]),
        },
        {},
      );
    },
  };
}

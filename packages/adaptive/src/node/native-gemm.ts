// Why: a JavaScript scan runs at ~1.5 GFLOP/s and even a perfect JS top-k pass reads every score
// once more; ONNX Runtime's MLAS runs the product at ~70 GFLOP/s on one thread (AVX2/AVX-512 FMA)
// and its TopK selects inside the same native call, so a full scan costs about one GEMM. The
// `onnxruntime-node` package ships the CPU binary prebuilt (its install script, which pnpm is
// told to skip, only fetches CUDA extras). It is an optional dependency: where it does not
// load, `nativeGemm()` is undefined and the index scans in JavaScript.
import { createRequire } from 'node:module';
import { MrlError } from '@mrl/core/errors';
import type { Gemm } from '../gemm.js';
import { initializer, node, ONNX_FLOAT, ONNX_INT64, onnxModel, valueInfo } from '@mrl/kernels/onnx-proto';

interface OrtTensorConstructor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): unknown;
  new (type: 'int8', data: Int8Array, dims: readonly number[]): unknown;
  new (type: 'uint8', data: Uint8Array, dims: readonly number[]): unknown;
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
/** BitwiseAnd needs opset 18. */
const OPSETS_18 = { '': 18, 'com.microsoft': 1 };
/** TensorProto.DataType codes not in the kernels' list. */
const ONNX_UINT8 = 2;
const ONNX_INT8 = 3;
const ONNX_BOOL = 9;

/** `Y[nq, nr] = Q[nq, d] @ X[nr, d]^T` (ONNX Runtime's contrib FusedMatMul with transB). */
function productModel(int8 = false): Uint8Array {
  return onnxModel(
    int8 ? 'mrl-scan-int8-product' : 'mrl-scan-product',
    [
      ...(int8 ? [node('Cast', ['X'], ['XF'], { to: ONNX_FLOAT })] : []),
      node('FusedMatMul', ['Q', int8 ? 'XF' : 'X'], ['Y'], { transA: 0, transB: 1 }, 'com.microsoft'),
      valueInfo(11, 'Q', ONNX_FLOAT, ['nq', 'd']),
      valueInfo(11, 'X', int8 ? ONNX_INT8 : ONNX_FLOAT, ['nr', 'd']),
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
function scanTopKModel(scaled: boolean, int8 = false): Uint8Array {
  return onnxModel(
    int8 ? 'mrl-scan-int8-topk' : 'mrl-scan-topk',
    [
      // int8 rows: widened to float here, so JavaScript never holds a float copy of the codes.
      ...(int8 ? [node('Cast', ['X'], ['XF'], { to: ONNX_FLOAT })] : []),
      node('FusedMatMul', ['Q', int8 ? 'XF' : 'X'], [scaled ? 'P' : 'S'], { transA: 0, transB: 1 }, 'com.microsoft'),
      ...(scaled ? [node('Mul', ['P', 'R'], ['S'])] : []),
      node('TopK', ['S', 'K'], ['V', 'I'], { axis: 1, largest: 1, sorted: 1 }),
      valueInfo(11, 'Q', ONNX_FLOAT, ['nq', 'd']),
      valueInfo(11, 'X', int8 ? ONNX_INT8 : ONNX_FLOAT, ['nr', 'd']),
      ...(scaled ? [valueInfo(11, 'R', ONNX_FLOAT, ['nr'])] : []),
      valueInfo(11, 'K', ONNX_INT64, [1]),
      valueInfo(12, 'V', ONNX_FLOAT, ['nq', 'k']),
      valueInfo(12, 'I', ONNX_INT64, ['nq', 'k']),
    ],
    OPSETS,
  );
}

/**
 * Per query, the K best of `Q @ unpack(X)^T`: X holds sign bits as bytes [nr, w8] (bit b of byte
 * c is coordinate 8c + b, the little-endian view of `BinaryPrefix.bits`), unpacked here to 0/1
 * floats [nr, 8 w8]; Q is [nq, 8 w8] with +1 / -1 for the query's set / clear bits, 0 past the
 * prefix. Then Q · unpack(x) = (set bits of the query) - Hamming(q, x).
 */
function hammingTopKModel(): Uint8Array {
  const bytes = (values: number[]) => Uint8Array.from(values);
  const int64s = (values: number[]) => new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
  return onnxModel(
    'mrl-scan-hamming-topk',
    [
      node('Unsqueeze', ['X', 'axis2'], ['X3']), // [nr, w8, 1]
      node('BitwiseAnd', ['X3', 'masks'], ['B']), // [nr, w8, 8]
      node('Cast', ['B'], ['BB'], { to: ONNX_BOOL }),
      node('Cast', ['BB'], ['BF'], { to: ONNX_FLOAT }),
      node('Reshape', ['BF', 'flat'], ['XF']), // [nr, 8 w8]
      node('FusedMatMul', ['Q', 'XF'], ['S'], { transA: 0, transB: 1 }, 'com.microsoft'),
      node('TopK', ['S', 'K'], ['V', 'I'], { axis: 1, largest: 1, sorted: 1 }),
      initializer('axis2', [1], ONNX_INT64, int64s([2])),
      initializer('masks', [8], ONNX_UINT8, bytes([1, 2, 4, 8, 16, 32, 64, 128])),
      initializer('flat', [2], ONNX_INT64, int64s([0, -1])),
      valueInfo(11, 'Q', ONNX_FLOAT, ['nq', 'b']),
      valueInfo(11, 'X', ONNX_UINT8, ['nr', 'w8']),
      valueInfo(11, 'K', ONNX_INT64, [1]),
      valueInfo(12, 'V', ONNX_FLOAT, ['nq', 'k']),
      valueInfo(12, 'I', ONNX_INT64, ['nq', 'k']),
    ],
    OPSETS_18,
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
  const checkK = (k: number, bRows: number, what: string): void => {
    if (!Number.isInteger(k) || k < 1 || k > bRows) {
      throw new MrlError('invalid-argument', `${what} needs 1 <= k <= ${bRows} rows, got k = ${k}`);
    }
    kTensor[0] = BigInt(k);
  };
  const outputs = (values: Float32Array, indices: BigInt64Array, aRows: number, k: number) => ({
    V: new Tensor('float32', values.subarray(0, aRows * k), [aRows, k]),
    I: new Tensor('int64', indices.subarray(0, aRows * k), [aRows, k]),
  });
  return {
    name: `ONNX Runtime ${version} (MLAS), ${threads} thread${threads === 1 ? '' : 's'}`,
    multiplyTransposed(a, aRows, b, bRows, dim, y) {
      if (aRows === 0 || bRows === 0) return;
      session('product', () => productModel()).run(
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
      checkK(k, bRows, 'multiplyTopK');
      const feeds: Record<string, unknown> = {
        Q: new Tensor('float32', a.subarray(0, aRows * dim), [aRows, dim]),
        X: new Tensor('float32', b.subarray(0, bRows * dim), [bRows, dim]),
        K: new Tensor('int64', kTensor, [1]),
      };
      if (scale !== undefined) feeds.R = new Tensor('float32', scale.subarray(0, bRows), [bRows]);
      session(scale === undefined ? 'topk' : 'topk-scaled', () => scanTopKModel(scale !== undefined)).run(
        feeds,
        outputs(values, indices, aRows, k),
        {},
      );
    },
    multiplyInt8Transposed(a, aRows, codes, bRows, dim, y) {
      if (aRows === 0 || bRows === 0) return;
      session('int8-product', () => productModel(true)).run(
        {
          Q: new Tensor('float32', a.subarray(0, aRows * dim), [aRows, dim]),
          X: new Tensor('int8', codes.subarray(0, bRows * dim), [bRows, dim]),
        },
        { Y: new Tensor('float32', y.subarray(0, aRows * bRows), [aRows, bRows]) },
        {},
      );
    },
    multiplyInt8TopK(a, aRows, codes, bRows, dim, k, scale, values, indices) {
      if (aRows === 0 || bRows === 0) return;
      checkK(k, bRows, 'multiplyInt8TopK');
      const feeds: Record<string, unknown> = {
        Q: new Tensor('float32', a.subarray(0, aRows * dim), [aRows, dim]),
        X: new Tensor('int8', codes.subarray(0, bRows * dim), [bRows, dim]),
        K: new Tensor('int64', kTensor, [1]),
      };
      if (scale !== undefined) feeds.R = new Tensor('float32', scale.subarray(0, bRows), [bRows]);
      session(scale === undefined ? 'int8-topk' : 'int8-topk-scaled', () =>
        scanTopKModel(scale !== undefined, true),
      ).run(feeds, outputs(values, indices, aRows, k), {});
    },
    hammingTopK(querySigns, aRows, rowBits, bRows, words, k, values, indices) {
      if (aRows === 0 || bRows === 0) return;
      checkK(k, bRows, 'hammingTopK');
      const width = 32 * words;
      const q = querySigns.subarray(0, aRows * width);
      const bytes = new Uint8Array(rowBits.buffer, rowBits.byteOffset, bRows * words * 4);
      session('hamming-topk', hammingTopKModel).run(
        {
          Q: new Tensor('float32', q, [aRows, width]),
          X: new Tensor('uint8', bytes, [bRows, 4 * words]),
          K: new Tensor('int64', kTensor, [1]),
        },
        outputs(values, indices, aRows, k),
        {},
      );
      // Q · unpack(x) = (set bits of q) - Hamming: shift each query's values to -Hamming.
      for (let i = 0; i < aRows; i++) {
        let set = 0;
        for (let j = 0; j < width; j++) if ((q[i * width + j] as number) > 0) set++;
        for (let c = 0; c < k; c++) values[i * k + c] = (values[i * k + c] as number) - set;
      }
    },
  };
}

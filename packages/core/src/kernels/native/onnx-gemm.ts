// Why: wasm SIMD is 128 bits wide without FMA, so XNNPACK's GEMM tops out near 17-28 GFLOP/s on
// our machines, while a native GEMM with AVX2/AVX-512 FMA runs 2-5x that on one thread. The npm
// registry ships one such GEMM prebuilt: ONNX Runtime's MLAS inside `onnxruntime-node` (its CPU
// binary is in the package; only its CUDA extras download at install). One `FusedMatMul` graph per
// transpose pair is loaded once; each product then runs synchronously on views of the wasm heap
// (the binding wraps typed arrays without copying, the output included).
import { createRequire } from 'node:module';
import { MrlError } from '../../errors.js';
import { node, ONNX_FLOAT, onnxModel, valueInfo } from '../../onnx/proto.js';

/** A native matrix product over float32 arrays that the caller owns. */
export interface NativeGemm {
  /** What runs the products, for the backend's log line. */
  readonly detail: string;
  /**
   * `y = op(a) @ op(b)`, op transposing the last two axes when asked, with numpy broadcasting
   * over the leading (batch) axes; writes `y` in place. Shapes are checked by the runtime.
   */
  matMul(
    a: Float32Array,
    aShape: readonly number[],
    b: Float32Array,
    bShape: readonly number[],
    y: Float32Array,
    yShape: readonly number[],
    transposeA: boolean,
    transposeB: boolean,
  ): void;
}

interface OrtTensorConstructor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): unknown;
}
interface OrtNativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): unknown;
}
interface OrtBindingModule {
  binding: { InferenceSession: new () => OrtNativeSession };
  initOrt(): void;
}

/** `Y = op(A) @ op(B)` over inputs of any rank, from ONNX Runtime's contrib op set. */
function fusedMatMulModel(transposeA: boolean, transposeB: boolean): Uint8Array {
  return onnxModel(
    'mrl-matmul',
    [
      node('FusedMatMul', ['A', 'B'], ['Y'], { transA: transposeA ? 1 : 0, transB: transposeB ? 1 : 0 }, 'com.microsoft'),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'B', ONNX_FLOAT),
      valueInfo(12, 'Y', ONNX_FLOAT),
    ],
    { '': 13, 'com.microsoft': 1 },
  );
}

/** Options for {@link loadOnnxRuntimeGemm}. */
export interface OnnxGemmOptions {
  /** Threads for one product; default 1 (the wasm backend runs on one thread in Node). */
  threads?: number;
}

/**
 * ONNX Runtime's GEMM, or `undefined` when `onnxruntime-node` is not installed or does not load
 * on this platform. Synchronous, so a TF.js kernel can call it.
 */
export function loadOnnxRuntimeGemm(options: OnnxGemmOptions = {}): NativeGemm | undefined {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new MrlError('invalid-argument', `gemm threads must be a positive integer, got ${String(threads)}.`);
  }
  let ort: OrtBindingModule;
  let Tensor: OrtTensorConstructor;
  let version: string;
  try {
    const requireHere = createRequire(import.meta.url);
    const entry = requireHere.resolve('onnxruntime-node');
    const requireOrt = createRequire(entry);
    // The session API is asynchronous (it defers to setImmediate); its native binding is not.
    ort = requireOrt('./binding.js') as OrtBindingModule;
    Tensor = (requireOrt('onnxruntime-common') as { Tensor: OrtTensorConstructor }).Tensor;
    version = (requireOrt('../package.json') as { version: string }).version;
    ort.initOrt();
  } catch {
    return undefined;
  }
  const sessions = new Map<string, OrtNativeSession>();
  const session = (transposeA: boolean, transposeB: boolean): OrtNativeSession => {
    const key = `${Number(transposeA)}${Number(transposeB)}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = new ort.binding.InferenceSession();
      const model = fusedMatMulModel(transposeA, transposeB);
      s.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        // Shapes change from call to call: no planned memory patterns.
        enableMemPattern: false,
      });
      sessions.set(key, s);
    }
    return s;
  };
  return {
    detail: `ONNX Runtime ${version} (MLAS), ${threads} thread${threads === 1 ? '' : 's'}`,
    matMul(a, aShape, b, bShape, y, yShape, transposeA, transposeB) {
      if (y.length === 0) return;
      if (a.length === 0 || b.length === 0) {
        y.fill(0); // an empty reduction
        return;
      }
      session(transposeA, transposeB).run(
        { A: new Tensor('float32', a, aShape), B: new Tensor('float32', b, bShape) },
        { Y: new Tensor('float32', y, yShape) },
        {},
      );
    },
  };
}

import { loadOnnxRuntimeGemm } from '../../src/kernels/native/onnx-gemm.js';
import type { WasmTrainingKernelOptions } from '../../src/kernels/index.js';

/**
 * The two GEMMs our wasm kernels run on, for `describe.each`: XNNPACK (the wasm backend's) and
 * ONNX Runtime's (onnxruntime-node, installed with this repository; a test asserts it loads).
 */
export const GEMMS: ReadonlyArray<readonly [string, WasmTrainingKernelOptions]> = [
  ['xnnpack', {}],
  ['onnxruntime', { gemm: loadOnnxRuntimeGemm() ?? unavailable() }],
];

function unavailable(): never {
  throw new Error('onnxruntime-node did not load: run pnpm install (it is an optional dependency of @mrl/core).');
}

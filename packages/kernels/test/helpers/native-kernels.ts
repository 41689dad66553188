import { loadOnnxRuntimeKernels } from '../../src/native/onnxruntime.js';
import type { WasmTrainingKernelOptions } from '../../src/index.js';

/**
 * The two ways our wasm kernels run, for `describe.each`: in wasm (XNNPACK and ours) and on
 * ONNX Runtime's native kernels (onnxruntime-node, installed with this repository: this throws
 * when it does not load).
 */
export const NATIVE_OPTIONS: ReadonlyArray<readonly [string, WasmTrainingKernelOptions]> = [
  ['wasm', {}],
  // The convolutions on ONNX Runtime's graphs; oneDNN's are checked against them in onednn_conv.test.ts.
  ['onnxruntime', { native: loadOnnxRuntimeKernels({ convolution: 'onnxruntime' }) ?? unavailable() }],
];

function unavailable(): never {
  throw new Error('onnxruntime-node did not load: run pnpm install (it is an optional dependency of @mrl/kernels).');
}

// Why: a transformer's GELU and its gradient (transformer_ops.ts) run on one thread: 49 ms of
// ViT-tiny's 16-thread training step and 32 ms of BERT-mini's went to them. From SIZE_THRESHOLD
// float32 values up, at 2 threads or more (register.ts), both run as one pass each on the oneDNN
// addon's threads (native/batch_norm.cc), the same bits as the wasm kernels: their constants and
// operation order, with the wasm backend's own sigmoid (XNNPACK's) reproduced there. Other dtypes,
// mismatched inputs and small tensors keep the wasm kernels (and their errors).
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';

import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { elementCount, SIZE_THRESHOLD } from './native_sum.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

const large = (t: TensorInfo): boolean => t.dtype === 'float32' && elementCount(t) >= SIZE_THRESHOLD;

/** `MrlGelu` (outputs y, s) for large float32 inputs on `native`, else `wasm` (the SIMD kernel). */
export function createNativeGeluKernel(wasm: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(wasm, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const x = input(inputs, 'x');
    if (!large(x)) return wasm.kernelFunc(args);
    const y = backend.makeOutput([...x.shape], 'float32');
    const s = backend.makeOutput([...x.shape], 'float32');
    // Views only after the allocations: a heap growth detaches earlier ones.
    native.gelu(heapF32(backend, x), heapF32(backend, y), heapF32(backend, s));
    return [y, s];
  });
}

/** `MrlGeluGrad` (inputs x, s, dy; output dx) for large float32 inputs on `native`, else `wasm`. */
export function createNativeGeluGradKernel(wasm: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(wasm, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const x = input(inputs, 'x');
    const s = input(inputs, 's');
    const dy = input(inputs, 'dy');
    const n = elementCount(x);
    if (!large(x) || !large(s) || !large(dy) || elementCount(s) !== n || elementCount(dy) !== n) {
      return wasm.kernelFunc(args);
    }
    const dx = backend.makeOutput([...x.shape], 'float32');
    native.geluGrad(heapF32(backend, x), heapF32(backend, s), heapF32(backend, dy), heapF32(backend, dx));
    return dx;
  });
}

// Why: a transformer's layer norm and its gradient (MrlLayerNorm and MrlLayerNormGrad,
// transformer_ops.ts) run on one thread: 15.5 ms of ViT-tiny's 16-thread training step and 7.7 ms
// of BERT-mini's went to them while the products around them used every core. From SIZE_THRESHOLD
// float32 values up, at every thread count (register.ts; at one thread 0.6-0.9x the wasm kernels'
// time), both run on the oneDNN addon's threads
// (native/layer_norm.cc), the same bits as the wasm kernels at every thread count: each row's
// statistics and dx as the wasm kernel's four-lane sums, the gamma and beta gradients summed row
// by row per column (the threads split the columns for them). Other dtypes, shapes the wasm kernel
// refuses, mismatched inputs and small tensors keep the wasm kernels (and their errors).
//
// Also TF.js's `Softmax` (the wasm backend's, XNNPACK's, one thread: 6.1 ms of ViT-tiny's 16-thread
// step on [48, 65, 65]): from SIZE_THRESHOLD float32 values up, over the last axis, on the addon's
// threads with its rows split between them (one thread included: half the shipped kernel's time), the same bits as the shipped kernel (XNNPACK's exp
// polynomial and order of sums reproduced in native/layer_norm.cc).
import type { KernelConfig, NamedAttrMap, SoftmaxAttrs, TensorInfo } from '@tensorflow/tfjs';

import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { elementCount, SIZE_THRESHOLD } from './native_sum.js';
import { layerNormFits } from './transformer_ops.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Rows and columns of a large float32 `x` the kernels take, else undefined (the wasm kernel runs). */
function rowsCols(x: TensorInfo): [number, number] | undefined {
  if (x.dtype !== 'float32' || !layerNormFits(x.shape) || elementCount(x) < SIZE_THRESHOLD) return undefined;
  const cols = x.shape[x.shape.length - 1]!;
  return [elementCount(x) / cols, cols];
}

/** A float32 input of `n` values. */
const floats = (t: TensorInfo, n: number): boolean => t.dtype === 'float32' && elementCount(t) === n;

/** `MrlLayerNorm` (outputs y, mean, rstd) for large float32 inputs on `native`, else `wasm`. */
export function createNativeLayerNormKernel(wasm: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(wasm, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<{ epsilon: number } & NamedAttrMap>;
    const x = input(inputs, 'x');
    const gamma = input(inputs, 'gamma');
    const beta = input(inputs, 'beta');
    const size = rowsCols(x);
    if (size === undefined || !floats(gamma, size[1]) || !floats(beta, size[1])) return wasm.kernelFunc(args);
    const [rows, cols] = size;
    const y = backend.makeOutput([...x.shape], 'float32');
    const mean = backend.makeOutput([rows], 'float32');
    const rstd = backend.makeOutput([rows], 'float32');
    // Views only after the allocations: a heap growth detaches earlier ones.
    const at = (t: TensorInfo): Float32Array => heapF32(backend, t);
    native.layerNorm(rows, cols, attrs.epsilon, at(x), at(gamma), at(beta), at(y), at(mean), at(rstd));
    return [y, mean, rstd];
  });
}

/**
 * `MrlLayerNormGrad` (inputs x, mean, rstd, gamma, dy; outputs dx, dgamma, dbeta) for large
 * float32 inputs on `native`, else `wasm`.
 */
export function createNativeLayerNormGradKernel(wasm: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(wasm, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const x = input(inputs, 'x');
    const mean = input(inputs, 'mean');
    const rstd = input(inputs, 'rstd');
    const gamma = input(inputs, 'gamma');
    const dy = input(inputs, 'dy');
    const size = rowsCols(x);
    if (
      size === undefined ||
      !floats(mean, size[0]) ||
      !floats(rstd, size[0]) ||
      !floats(gamma, size[1]) ||
      !floats(dy, size[0] * size[1])
    ) {
      return wasm.kernelFunc(args);
    }
    const [rows, cols] = size;
    const dx = backend.makeOutput([...x.shape], 'float32');
    const dgamma = backend.makeOutput([cols], 'float32');
    const dbeta = backend.makeOutput([cols], 'float32');
    const at = (t: TensorInfo): Float32Array => heapF32(backend, t);
    native.layerNormGrad(rows, cols, at(x), at(mean), at(rstd), at(gamma), at(dy), at(dx), at(dgamma), at(dbeta));
    return [dx, dgamma, dbeta];
  });
}

/** `Softmax` over the last axis of large float32 logits on `native`, else `shipped` (XNNPACK's). */
export function createNativeSoftmaxKernel(shipped: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(shipped, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SoftmaxAttrs & NamedAttrMap>;
    const logits = input(inputs, 'logits');
    const rank = logits.shape.length;
    const last = attrs.dim === -1 || attrs.dim === rank - 1;
    if (logits.dtype !== 'float32' || rank === 0 || !last || elementCount(logits) < SIZE_THRESHOLD) {
      return shipped.kernelFunc(args);
    }
    const cols = logits.shape[rank - 1]!;
    const y = backend.makeOutput([...logits.shape], 'float32');
    native.softmax(elementCount(logits) / cols, cols, heapF32(backend, logits), heapF32(backend, y));
    return y;
  });
}

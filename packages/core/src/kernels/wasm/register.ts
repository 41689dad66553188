// Why: tfjs-backend-wasm 4.22 can run an MLP but cannot train conv nets or embeddings (two
// kernels missing) and is slow where backward passes spend their time (transposed matmul,
// conv input gradient, tile). These replacements close the gaps; see ENGINE.md.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

import { createBatchMatMulKernel } from './batch_mat_mul.js';
import { createConv2DBackpropFilterKernel } from './conv2d_backprop_filter.js';
import { createConv2DBackpropInputKernel } from './conv2d_backprop_input.js';
import { createDepthwiseConv2dBackpropFilterKernel } from './depthwise_conv2d_backprop_filter.js';
import { createDepthwiseConv2dBackpropInputKernel } from './depthwise_conv2d_backprop_input.js';
import { createFusedMatMulKernel } from './fused_mat_mul.js';
import { createIdentityKernel } from './identity.js';
import { createTileKernel } from './tile.js';
import { createUnsortedSegmentSumKernel } from './unsorted_segment_sum.js';
import { isOurs, WASM, wasmKernel } from './util.js';

type Factory = (get: (name: string) => KernelConfig) => KernelConfig;

const FACTORIES: ReadonlyArray<readonly [string, Factory]> = [
  [tf.BatchMatMul, createBatchMatMulKernel],
  [tf._FusedMatMul, createFusedMatMulKernel],
  [tf.Conv2DBackpropFilter, createConv2DBackpropFilterKernel],
  [tf.Conv2DBackpropInput, createConv2DBackpropInputKernel],
  [tf.UnsortedSegmentSum, createUnsortedSegmentSumKernel],
  [tf.Tile, createTileKernel],
  [tf.DepthwiseConv2dNativeBackpropFilter, createDepthwiseConv2dBackpropFilterKernel],
  [tf.DepthwiseConv2dNativeBackpropInput, createDepthwiseConv2dBackpropInputKernel],
  [tf.Identity, createIdentityKernel],
];

/** The wasm kernels that {@link registerWasmTrainingKernels} adds or replaces. */
export const WASM_TRAINING_KERNELS: readonly string[] = FACTORIES.map(([name]) => name);

/**
 * Registers our wasm kernels for training: fast transposed `BatchMatMul`/`_FusedMatMul`,
 * `Conv2DBackpropFilter`, `UnsortedSegmentSum` and the two depthwise-conv backprops (missing in
 * tfjs-backend-wasm 4.22), and fast `Conv2DBackpropInput`, `Tile` and (copy-free) `Identity`. The replaced kernels keep
 * the shipped ones as building blocks and fallbacks.
 *
 * Idempotent: a kernel that is already ours is left alone. Call it once the wasm backend is
 * loaded (`import '@tensorflow/tfjs-backend-wasm'`), before or after `tf.setBackend('wasm')`:
 * each replacement carries the shipped kernel's setup, run when the backend initializes.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import '@tensorflow/tfjs-backend-wasm';
 * await tf.setBackend('wasm');
 * registerWasmTrainingKernels();
 * ```
 * @throws MrlError `backend-unavailable` when `@tensorflow/tfjs-backend-wasm` is not loaded.
 */
export function registerWasmTrainingKernels(): void {
  // Capture every shipped kernel first: a factory may need one we are about to replace.
  const shipped = new Map<string, KernelConfig>();
  const get = (name: string): KernelConfig => {
    const known = shipped.get(name);
    if (known !== undefined) return known;
    const config = wasmKernel(name);
    shipped.set(name, config);
    return config;
  };
  const pending = FACTORIES.filter(([name]) => {
    const current = tf.getKernel(name, WASM);
    return current === undefined || !isOurs(current.kernelFunc);
  });
  get(tf.Transpose); // throws when the wasm backend is not loaded
  get(tf.Conv2D);
  for (const [name] of pending) {
    if (tf.getKernel(name, WASM) !== undefined) get(name);
  }
  // Build all before touching the registry, so that a failure leaves it as it was.
  const built = pending.map(([name, factory]) => [name, factory(get)] as const);
  for (const [name, config] of built) {
    if (tf.getKernel(name, WASM) !== undefined) tf.unregisterKernel(name, WASM);
    tf.registerKernel(config);
  }
}

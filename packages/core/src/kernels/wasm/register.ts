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
import type { NativeGemm } from '../native/onnx-gemm.js';
import { createNativeBatchMatMulKernel, createNativeFusedMatMulKernel } from './native_mat_mul.js';
import { createTileKernel } from './tile.js';
import { createUnsortedSegmentSumKernel } from './unsorted_segment_sum.js';
import { isOurs, WASM, wasmKernel } from './util.js';

type Factory = (get: (name: string) => KernelConfig, gemm: NativeGemm | undefined) => KernelConfig;

const FACTORIES: ReadonlyArray<readonly [string, Factory]> = [
  [tf.BatchMatMul, (get, gemm) => (gemm === undefined ? createBatchMatMulKernel(get) : createNativeBatchMatMulKernel(get(tf.BatchMatMul), gemm))],
  [tf._FusedMatMul, (get, gemm) => (gemm === undefined ? createFusedMatMulKernel(get) : createNativeFusedMatMulKernel(get, gemm))],
  [tf.Conv2DBackpropFilter, createConv2DBackpropFilterKernel],
  [tf.Conv2DBackpropInput, createConv2DBackpropInputKernel],
  [tf.UnsortedSegmentSum, createUnsortedSegmentSumKernel],
  [tf.Tile, createTileKernel],
  [tf.DepthwiseConv2dNativeBackpropFilter, createDepthwiseConv2dBackpropFilterKernel],
  [tf.DepthwiseConv2dNativeBackpropInput, createDepthwiseConv2dBackpropInputKernel],
  [tf.Identity, createIdentityKernel],
];

/** Marks which GEMM a registered kernel was built for (`xnnpack` or a native one's detail). */
const GEMM_TAG = Symbol.for('mrl/wasmTrainingKernelGemm');

function gemmTag(kernel: KernelConfig | undefined): unknown {
  return kernel === undefined ? undefined : (kernel.kernelFunc as unknown as Record<symbol, unknown>)[GEMM_TAG];
}

/**
 * The shipped kernels our replacements wrap, kept once seen: registering again for another GEMM
 * rebuilds from them, as the registry then holds only ours. Global, so that two copies of this
 * module share it.
 */
const SHIPPED: Map<string, KernelConfig> = ((globalThis as Record<symbol, unknown>)[Symbol.for('mrl/shippedWasmKernels')] ??= new Map()) as Map<string, KernelConfig>;

/** Options for {@link registerWasmTrainingKernels}. */
export interface WasmTrainingKernelOptions {
  /**
   * A native GEMM (see `loadOnnxRuntimeGemm`) for every float32 product: BatchMatMul,
   * _FusedMatMul and the conv filter gradient. Without it they run on XNNPACK's wasm GEMM.
   */
  gemm?: NativeGemm;
}

/** The wasm kernels that {@link registerWasmTrainingKernels} adds or replaces. */
export const WASM_TRAINING_KERNELS: readonly string[] = FACTORIES.map(([name]) => name);

/**
 * Registers our wasm kernels for training: fast transposed `BatchMatMul`/`_FusedMatMul`,
 * `Conv2DBackpropFilter`, `UnsortedSegmentSum` and the two depthwise-conv backprops (missing in
 * tfjs-backend-wasm 4.22), and fast `Conv2DBackpropInput`, `Tile` and (copy-free) `Identity`. The replaced kernels keep
 * the shipped ones as building blocks and fallbacks.
 *
 * Idempotent: a kernel that is already ours, for the same GEMM, is left alone; asking for another
 * GEMM rebuilds the kernels for it. Call it once the wasm backend is
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
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): void {
  const { gemm } = options;
  const tag = gemm?.detail ?? 'xnnpack';
  const get = (name: string): KernelConfig => {
    const known = SHIPPED.get(name);
    if (known !== undefined) return known;
    const config = wasmKernel(name);
    if (!isOurs(config.kernelFunc)) SHIPPED.set(name, config);
    return config;
  };
  const pending = FACTORIES.filter(([name]) => {
    const current = tf.getKernel(name, WASM);
    return current === undefined || !isOurs(current.kernelFunc) || gemmTag(current) !== tag;
  });
  get(tf.Transpose); // throws when the wasm backend is not loaded
  get(tf.Conv2D);
  // Capture every shipped kernel first: a factory may need one we are about to replace.
  for (const [name] of pending) {
    if (tf.getKernel(name, WASM) !== undefined) get(name);
  }
  // Build all before touching the registry, so that a failure leaves it as it was.
  const built = pending.map(([name, factory]) => {
    const config = factory(get, gemm);
    Object.defineProperty(config.kernelFunc, GEMM_TAG, { value: tag, configurable: true });
    return [name, config] as const;
  });
  for (const [name, config] of built) {
    if (tf.getKernel(name, WASM) !== undefined) tf.unregisterKernel(name, WASM);
    tf.registerKernel(config);
  }
}

// Why: tfjs-backend-wasm 4.22 can run an MLP but cannot train conv nets or embeddings (two
// kernels missing) and is slow where backward passes spend their time (transposed matmul,
// conv input gradient, tile). These replacements close the gaps; see ENGINE.md. Given native
// kernels (ONNX Runtime), the heavy ones run there instead, and the fused softmax losses exist.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

import { ADD_RELU, createAddReluKernel, createReluGradKernel, RELU_GRAD } from './add_relu.js';
import { createBatchMatMulKernel } from './batch_mat_mul.js';
import {
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  createBatchNormTrainingGradKernel,
  createBatchNormTrainingKernel,
} from './batch_norm.js';
import { createConv2DBackpropFilterKernel } from './conv2d_backprop_filter.js';
import { createConv2DBackpropInputKernel } from './conv2d_backprop_input.js';
import { createDepthwiseConv2dBackpropFilterKernel } from './depthwise_conv2d_backprop_filter.js';
import { createDepthwiseConv2dBackpropInputKernel } from './depthwise_conv2d_backprop_input.js';
import { createFusedMatMulKernel } from './fused_mat_mul.js';
import { createIdentityKernel } from './identity.js';
import { createNativeAddKernel } from './native_add.js';
import { createNativeBinaryKernel, createNativeRowSumKernel } from './native_binary.js';
import {
  ATTENTION,
  ATTENTION_GRAD,
  createNativeAttentionGradKernel,
  createNativeAttentionKernel,
} from './native_attention.js';
import { createNativeGeluGradKernel, createNativeGeluKernel } from './native_gelu.js';
import {
  createNativeConcatKernel,
  createNativeLayoutSplitVKernel,
  createNativeSliceKernel,
  createNativeTransposeKernel,
} from './native_layout.js';
import {
  createNativeLayerNormGradKernel,
  createNativeLayerNormKernel,
  createNativeSoftmaxKernel,
} from './native_layer_norm.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { createConv2DKernel, createNativeConv2DBackpropInputKernel } from './native_conv.js';
import { createNativeBatchMatMulKernel, createNativeFusedMatMulKernel } from './native_mat_mul.js';
import {
  createSoftmaxCrossEntropyGradKernel,
  createSoftmaxCrossEntropyKernel,
  SOFTMAX_CROSS_ENTROPY,
  SOFTMAX_CROSS_ENTROPY_GRAD,
} from './native_softmax_ce.js';
import { createNativeSumKernel } from './native_sum.js';
import {
  createPrefixSoftmaxGradKernel,
  createPrefixSoftmaxKernel,
  PREFIX_SOFTMAX_CE,
  PREFIX_SOFTMAX_CE_GRAD,
} from './native_prefix_softmax.js';
import {
  CHUNKED_PREFIX_CE,
  CHUNKED_PREFIX_CE_GRAD,
  createChunkedPrefixSoftmaxGradKernel,
  createChunkedPrefixSoftmaxKernel,
} from './native_chunked_prefix_softmax.js';
import { createNativeSplitVKernel } from './native_split.js';
import { ADAMW_UPDATE, createAdamWUpdateKernel, createSgdUpdateKernel, SGD_UPDATE } from './optimizer_updates.js';
import { createRunningMomentsKernel, RUNNING_MOMENTS } from './running_moments.js';
import { createDropoutMultiplierKernel, DROPOUT_MULTIPLIER } from './dropout.js';
import { createTileKernel } from './tile.js';
import { createGatherKernel } from './gather.js';
import {
  createGeluGradKernel,
  createGeluKernel,
  createLayerNormGradKernel,
  createLayerNormKernel,
  GELU,
  GELU_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
} from './transformer_ops.js';
import { createUnsortedSegmentSumKernel } from './unsorted_segment_sum.js';
import { isOurs, replacing, WASM, wasmKernel } from './util.js';

type Factory = (get: (name: string) => KernelConfig, native: NativeKernels | undefined) => KernelConfig;

const FACTORIES: ReadonlyArray<readonly [string, Factory]> = [
  [
    tf.BatchMatMul,
    (get, native) =>
      native === undefined ? createBatchMatMulKernel(get) : createNativeBatchMatMulKernel(get(tf.BatchMatMul), native),
  ],
  [
    tf._FusedMatMul,
    (get, native) => (native === undefined ? createFusedMatMulKernel(get) : createNativeFusedMatMulKernel(get, native)),
  ],
  [tf.Conv2DBackpropFilter, createConv2DBackpropFilterKernel],
  [tf.Conv2D, createConv2DKernel],
  [
    tf.Conv2DBackpropInput,
    (get, native) =>
      native === undefined
        ? createConv2DBackpropInputKernel(get)
        : createNativeConv2DBackpropInputKernel(createConv2DBackpropInputKernel(get), native),
  ],
  [tf.UnsortedSegmentSum, createUnsortedSegmentSumKernel],
  [tf.Tile, createTileKernel],
  [tf.GatherV2, createGatherKernel],
  [tf.DepthwiseConv2dNativeBackpropFilter, createDepthwiseConv2dBackpropFilterKernel],
  [tf.DepthwiseConv2dNativeBackpropInput, createDepthwiseConv2dBackpropInputKernel],
  [tf.Identity, createIdentityKernel],
  [ADAMW_UPDATE, (_get, native) => createAdamWUpdateKernel(native)],
  [BATCH_NORM_TRAINING, (_get, native) => createBatchNormTrainingKernel(native)],
  [BATCH_NORM_TRAINING_GRAD, (_get, native) => createBatchNormTrainingGradKernel(native)],
  [ADD_RELU, (_get, native) => createAddReluKernel(native)],
  [RELU_GRAD, (_get, native) => createReluGradKernel(native)],
  [RUNNING_MOMENTS, createRunningMomentsKernel],
  [SGD_UPDATE, (_get, native) => createSgdUpdateKernel(native)],
  [DROPOUT_MULTIPLIER, (_get, native) => createDropoutMultiplierKernel(native)],
  [
    GELU,
    (get, native) =>
      // At one thread the wasm SIMD kernels stay (the same bits either way).
      native?.batchNorm === undefined || native.batchNorm.threads < 2
        ? createGeluKernel(get)
        : createNativeGeluKernel(createGeluKernel(get), native.batchNorm),
  ],
  [
    GELU_GRAD,
    (_get, native) =>
      native?.batchNorm === undefined || native.batchNorm.threads < 2
        ? createGeluGradKernel()
        : createNativeGeluGradKernel(createGeluGradKernel(), native.batchNorm),
  ],
  [
    LAYER_NORM,
    (_get, native) =>
      // On the addon at every thread count (the same bits as the wasm SIMD kernels, and 0.6-0.9x
      // their time at one thread: bench/layer-norm-threads.mjs).
      native?.batchNorm === undefined
        ? createLayerNormKernel()
        : createNativeLayerNormKernel(createLayerNormKernel(), native.batchNorm),
  ],
  [
    LAYER_NORM_GRAD,
    (_get, native) =>
      native?.batchNorm === undefined
        ? createLayerNormGradKernel()
        : createNativeLayerNormGradKernel(createLayerNormGradKernel(), native.batchNorm),
  ],
  [
    tf.Softmax,
    // XNNPACK's bits, at half its time at one thread.
    (get, native) =>
      native?.batchNorm === undefined
        ? passThrough(get(tf.Softmax))
        : createNativeSoftmaxKernel(get(tf.Softmax), native.batchNorm),
  ],
  [
    tf.Add,
    (get, native) =>
      // One thread gains nothing over the shipped kernel: both are one memory-bound pass.
      native?.batchNorm === undefined || native.batchNorm.threads < 2
        ? passThrough(get(tf.Add))
        : createNativeBinaryKernel(createNativeAddKernel(get(tf.Add), native.batchNorm), native.batchNorm, 'add'),
  ],
  // Multiply, Sub, and Sum/Mean over any axes on the addon's threads (native_binary.ts).
  [
    tf.Multiply,
    (get, native) => onAddonThreads(get(tf.Multiply), native, (k, nb) => createNativeBinaryKernel(k, nb, 'mul')),
  ],
  [tf.Sub, (get, native) => onAddonThreads(get(tf.Sub), native, (k, nb) => createNativeBinaryKernel(k, nb, 'sub'))],
  [
    tf.Sum,
    (get, native) =>
      native === undefined
        ? passThrough(get(tf.Sum))
        : // Sums over any axes on the addon at every thread count (the same bits at each and at
          // every heap address, where ONNX Runtime's ReduceSum depends on the array's alignment;
          // rows and last-axis sums 0.5-0.95x its time at one).
          onAddon(createNativeSumKernel(get(tf.Sum), native), native, (k, nb) => createNativeRowSumKernel(k, nb)),
  ],
  [
    tf.Mean,
    (get, native) =>
      native === undefined
        ? passThrough(get(tf.Mean))
        : onAddon(createNativeSumKernel(get(tf.Mean), native, true), native, (k, nb) =>
            createNativeRowSumKernel(k, nb, true),
          ),
  ],
  [
    tf.SplitV,
    (get, native) => {
      if (native === undefined) return passThrough(get(tf.SplitV));
      const split = createNativeSplitVKernel(get(tf.SplitV), native);
      // Large splits on the addon (faster than ONNX Runtime's Split at one thread too); ONNX
      // Runtime's without it.
      return native.batchNorm === undefined ? split : createNativeLayoutSplitVKernel(split, native.batchNorm);
    },
  ],
  // Copies on the addon at every thread count (native_layout.ts: as fast or faster at one thread,
  // the same bits); the shipped ones without it.
  [tf.Transpose, (get, native) => onAddon(get(tf.Transpose), native, createNativeTransposeKernel)],
  [tf.Concat, (get, native) => onAddon(get(tf.Concat), native, createNativeConcatKernel)],
  [tf.Slice, (get, native) => onAddon(get(tf.Slice), native, createNativeSliceKernel)],
];

/** Kernels of our own (no shipped counterpart) that exist only on native kernels (where `create` returns one). */
const NATIVE_ONLY: ReadonlyArray<readonly [string, (native: NativeKernels) => KernelConfig | undefined]> = [
  [SOFTMAX_CROSS_ENTROPY, createSoftmaxCrossEntropyKernel],
  [SOFTMAX_CROSS_ENTROPY_GRAD, createSoftmaxCrossEntropyGradKernel],
  [PREFIX_SOFTMAX_CE, createPrefixSoftmaxKernel],
  [PREFIX_SOFTMAX_CE_GRAD, createPrefixSoftmaxGradKernel],
  [CHUNKED_PREFIX_CE, createChunkedPrefixSoftmaxKernel],
  [CHUNKED_PREFIX_CE_GRAD, createChunkedPrefixSoftmaxGradKernel],
  // Fused attention on the oneDNN addon, at every thread count (faster than the TF.js ops at 1 too).
  [ATTENTION, (native) => (native.batchNorm === undefined ? undefined : createNativeAttentionKernel(native.batchNorm))],
  [
    ATTENTION_GRAD,
    (native) => (native.batchNorm === undefined ? undefined : createNativeAttentionGradKernel(native.batchNorm)),
  ],
];

/** The shipped kernel under our mark, for kernels that only some settings replace. */
function passThrough(original: KernelConfig): KernelConfig {
  return replacing(original, (args) => original.kernelFunc(args));
}

/** `kernel` wrapped by `wrap` on the addon's batch-norm kernels at any thread count; else `kernel`. */
function onAddon(
  kernel: KernelConfig,
  native: NativeKernels | undefined,
  wrap: (kernel: KernelConfig, addon: NativeBatchNorm) => KernelConfig,
): KernelConfig {
  return native?.batchNorm === undefined ? passThrough(kernel) : wrap(kernel, native.batchNorm);
}

/**
 * `kernel` wrapped by `wrap` on the addon's batch-norm threads at 2 threads or more; else `kernel`
 * (under our mark): at one thread the shipped kernels are as fast (one memory-bound pass).
 */
function onAddonThreads(
  kernel: KernelConfig,
  native: NativeKernels | undefined,
  wrap: (kernel: KernelConfig, addon: NativeBatchNorm) => KernelConfig,
): KernelConfig {
  return native?.batchNorm === undefined || native.batchNorm.threads < 2
    ? passThrough(kernel)
    : wrap(kernel, native.batchNorm);
}

/** Marks what a registered kernel was built on (`wasm`, or the native kernels' detail). */
const NATIVE_TAG = Symbol.for('mrl/wasmTrainingKernelNative');

function nativeTag(kernel: KernelConfig | undefined): unknown {
  return kernel === undefined ? undefined : (kernel.kernelFunc as unknown as Record<symbol, unknown>)[NATIVE_TAG];
}

/**
 * The shipped kernels our replacements wrap, kept once seen: registering again for other native
 * kernels rebuilds from them, as the registry then holds only ours. Global, so that two copies of this
 * module share it.
 */
const SHIPPED: Map<string, KernelConfig> = ((globalThis as Record<symbol, unknown>)[
  Symbol.for('mrl/shippedWasmKernels')
] ??= new Map()) as Map<string, KernelConfig>;

/** Options for {@link registerWasmTrainingKernels}. */
export interface WasmTrainingKernelOptions {
  /**
   * Native kernels (see `loadOnnxRuntimeKernels`) for the float32 products: BatchMatMul,
   * _FusedMatMul, NHWC Conv2D and both its gradients. Without them these run on the wasm
   * backend's XNNPACK (with our kernels where it lacks one).
   */
  native?: NativeKernels;
}

/** The wasm kernels that {@link registerWasmTrainingKernels} adds or replaces. */
export const WASM_TRAINING_KERNELS: readonly string[] = FACTORIES.map(([name]) => name);

/**
 * Registers our wasm kernels for training: fast transposed `BatchMatMul`/`_FusedMatMul`,
 * `Conv2DBackpropFilter`, `UnsortedSegmentSum` and the two depthwise-conv backprops (missing in
 * tfjs-backend-wasm 4.22), fast `Conv2DBackpropInput`, `Tile`, row-copy `GatherV2` and (copy-free) `Identity`, and the
 * one-pass SIMD optimiser updates, and dropout masks (`MrlDropoutMultiplier`, Philox4x32-10; on the
 * addon's threads where it is built). With `native`, the matmuls, Conv2D and both its gradients,
 * SplitV and large Sum/Mean run on it; on the oneDNN addon, large Transpose, SplitV, Concat and
 * Slice copies, row and last-axis sums, layer norm, Softmax and the fused attention at every
 * thread count, and at 2 threads or more large Add, GELU and its gradient, Multiply and Sub; the
 * fused softmax cross-entropy kernels are added. The replaced kernels keep the shipped ones as
 * building blocks and fallbacks.
 *
 * Idempotent: a kernel that is already ours, on the same native kernels, is left alone; asking
 * for other native kernels (or none) rebuilds them. Call it once the wasm backend is loaded
 * (`import '@tensorflow/tfjs-backend-wasm'`), before or after `tf.setBackend('wasm')`: each
 * replacement carries the shipped kernel's setup, run when the backend initializes.
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
  const { native } = options;
  const tag = native?.detail ?? 'wasm';
  const get = (name: string): KernelConfig => {
    const known = SHIPPED.get(name);
    if (known !== undefined) return known;
    const config = wasmKernel(name);
    if (!isOurs(config.kernelFunc)) SHIPPED.set(name, config);
    return config;
  };
  const pending = FACTORIES.filter(([name]) => {
    const current = tf.getKernel(name, WASM);
    return current === undefined || !isOurs(current.kernelFunc) || nativeTag(current) !== tag;
  });
  get(tf.Transpose); // throws when the wasm backend is not loaded
  get(tf.Conv2D);
  // Capture every shipped kernel first: a factory may need one we are about to replace.
  for (const [name] of pending) {
    if (tf.getKernel(name, WASM) !== undefined) get(name);
  }
  // Build all before touching the registry, so that a failure leaves it as it was.
  const built = pending.map(([name, factory]) => {
    const config = factory(get, native);
    Object.defineProperty(config.kernelFunc, NATIVE_TAG, { value: tag, configurable: true });
    return [name, config] as const;
  });
  for (const [name, config] of built) {
    if (tf.getKernel(name, WASM) !== undefined) tf.unregisterKernel(name, WASM);
    tf.registerKernel(config);
  }
  for (const [name, create] of NATIVE_ONLY) {
    const current = tf.getKernel(name, WASM);
    if (current !== undefined && nativeTag(current) === tag) continue;
    if (current !== undefined) tf.unregisterKernel(name, WASM);
    if (native === undefined) continue;
    const config = create(native);
    if (config === undefined) continue;
    Object.defineProperty(config.kernelFunc, NATIVE_TAG, { value: tag, configurable: true });
    tf.registerKernel(config);
  }
}

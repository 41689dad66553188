// Why: the backward pass of a residual block sums the two gradients of its input (the shortcut's
// and the convolutions'): TF.js's `Add` on activation-sized tensors, on one thread. In a
// ResNet-18 step at 2 threads these eight sums were 6.4 ms of the ~9 ms that still ran on one
// thread (bench/resnet-profile.mjs). Same-shape float32 sums from SIZE_THRESHOLD elements up run
// on the oneDNN addon's threads (one rounding per element, as the shipped kernel: the same bits);
// broadcasts, other dtypes and small tensors keep the shipped kernel, and so does a single thread
// (register.ts): there both are one memory-bound pass, and BERT-mini's Matryoshka head measured
// 1.09-1.15x its plain head with the addon's sums against 1.07 with the shipped ones.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { elementCount, SIZE_THRESHOLD } from './native_sum.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** `Add` for wasm: large same-shape float32 sums on `native` (the addon's threads). */
export function createNativeAddKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    if (
      a.dtype !== 'float32' ||
      b.dtype !== 'float32' ||
      elementCount(a) < SIZE_THRESHOLD ||
      !tf.util.arraysEqual(a.shape, b.shape)
    ) {
      return original.kernelFunc(args);
    }
    const out = backend.makeOutput([...a.shape], 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    native.add(heapF32(backend, a), heapF32(backend, b), heapF32(backend, out));
    return out;
  });
}

// Why: the backward pass of a residual block sums the two gradients of its input (the shortcut's
// and the convolutions'): TF.js's `Add` on activation-sized tensors, on one thread. In a
// ResNet-18 step at 2 threads these eight sums were 6.4 ms of the ~9 ms that still ran on one
// thread (bench/resnet-profile.mjs). Same-shape float32 sums from SIZE_THRESHOLD elements up run
// on the oneDNN addon's threads (one rounding per element, as the shipped kernel: the same bits),
// and so do a transformer's bias adds ([rows, n] + [n]: Add was 34 ms of ViT-tiny's 16-thread
// step, 114 calls); other broadcasts, other dtypes and small tensors keep the shipped kernel, and
// so does a single thread
// (register.ts): there both are one memory-bound pass, and BERT-mini's Matryoshka head measured
// 1.09-1.15x its plain head with the addon's sums against 1.07 with the shipped ones.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { elementCount, SIZE_THRESHOLD } from './native_sum.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Whether `small` broadcasts along the rows of `large`: its shape, leading 1s aside, is the
 * trailing dims of `large` (a bias [n] added to [rows, n]), so the sum has `large`'s shape.
 */
function rowBroadcast(large: readonly number[], small: readonly number[]): boolean {
  let from = 0;
  while (from < small.length - 1 && small[from] === 1) from++;
  const tail = small.slice(from);
  return small.length <= large.length && tf.util.arraysEqual(tail, large.slice(large.length - tail.length));
}

/**
 * `Add` for wasm: large float32 sums on `native` (the addon's threads), same-shape or a row
 * vector added to each row (either operand).
 */
export function createNativeAddKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    const [large, small] = elementCount(a) >= elementCount(b) ? [a, b] : [b, a];
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || elementCount(large) < SIZE_THRESHOLD) {
      return original.kernelFunc(args);
    }
    if (tf.util.arraysEqual(a.shape, b.shape)) {
      const out = backend.makeOutput([...a.shape], 'float32');
      // Views only after the allocation: a heap growth detaches earlier ones.
      native.add(heapF32(backend, a), heapF32(backend, b), heapF32(backend, out));
      return out;
    }
    if (elementCount(small) === 0 || !rowBroadcast(large.shape, small.shape)) return original.kernelFunc(args);
    const out = backend.makeOutput([...large.shape], 'float32');
    // large + small, one rounding per value: the same bits as small + large.
    native.addRows(heapF32(backend, large), heapF32(backend, small), heapF32(backend, out));
    return out;
  });
}

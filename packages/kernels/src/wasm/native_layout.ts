// Why: the copies that move a transformer's tensors between layouts ran on one thread while the
// products around them used every core: a 16-thread profile of one ViT-tiny step spent 16.8 ms in
// SplitV (on ONNX Runtime's Split, one thread: ./native_split.ts), 17.4 ms in the wasm backend's
// Transpose and 5.0 ms in its Concat; BERT-mini 9.6 ms in Transpose and 1.5 ms in Slice. These
// kernels run the same copies on the oneDNN addon's threads (native/layout.cc: a transpose merges
// the axes that stay together and copies whole runs where the innermost axis stays, tiles
// otherwise; SplitV and Concat copy one run per part and row; Slice the runs of its inner
// extent). Copies: the same bits as the kernels they replace, at every thread count.
// Registered wherever the addon loads, one thread included (register.ts); other dtypes, empty tensors and tensors
// under LAYOUT_THRESHOLD values keep the kernel they replace. bench/layout-threads.mjs, on one
// thread: the addon's copies cost the same as the shipped kernels' at 8K-16K values and 0.2-0.7x
// from 32K (ViT's q|k|v SplitV 0.14 ms against ONNX Runtime's 1.70 ms, BERT's prefix Slice 0.04
// against 0.69 ms, BERT's [8,4,64,128] 2-D transpose 0.06 against 0.15 ms; Concat the same).
import * as tf from '@tensorflow/tfjs';
import type { ConcatAttrs, KernelConfig, SliceAttrs, SplitVAttrs, TensorInfo, TransposeAttrs } from '@tensorflow/tfjs';

import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Values from which a copy runs on the addon; smaller ones stay on the kernel replaced (see above). */
export const LAYOUT_THRESHOLD = 1 << 15;

/** The addon's transpose takes up to this rank. */
const MAX_RANK = 8;

const size = (shape: readonly number[]): number => tf.util.sizeFromShape([...shape]);

/** `Transpose` for wasm: large float32 tensors on `native` (the addon's threads). */
export function createNativeTransposeKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<TransposeAttrs>;
    const x = input(inputs, 'x');
    const perm = [...attrs.perm];
    const rank = x.shape.length;
    if (
      x.dtype !== 'float32' ||
      size(x.shape) < LAYOUT_THRESHOLD ||
      rank > MAX_RANK ||
      perm.length !== rank ||
      perm.every((a, i) => a === i) || // no move: the shipped kernel's copy-free identity
      !perm.every((a) => Number.isInteger(a) && a >= 0 && a < rank)
    ) {
      return original.kernelFunc(args);
    }
    const out = backend.makeOutput(
      perm.map((a) => x.shape[a]!),
      'float32',
    );
    // Views only after the allocation: a heap growth detaches earlier ones.
    native.transpose(heapF32(backend, x), x.shape, perm, heapF32(backend, out));
    return out;
  });
}

/**
 * `SplitV` for wasm: large float32 tensors on `native`, as [outer, W] rows cut into the parts'
 * [outer, w_k]; `original` (ONNX Runtime's Split, or the shipped kernel) otherwise.
 */
export function createNativeLayoutSplitVKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SplitVAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype !== 'float32' || x.shape.length === 0 || size(x.shape) < LAYOUT_THRESHOLD) {
      return original.kernelFunc(args);
    }
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits, axis);
    if (sizes.some((s) => s === 0)) return original.kernelFunc(args);
    const outs: TensorInfo[] = sizes.map((s) =>
      backend.makeOutput(
        x.shape.map((d, a) => (a === axis ? s : d)),
        'float32',
      ),
    );
    const outer = size(x.shape.slice(0, axis));
    native.splitRows(
      heapF32(backend, x),
      outer,
      outs.map((t) => heapF32(backend, t)),
    );
    return outs;
  });
}

/** `Concat` for wasm: large float32 concatenations of non-empty tensors on `native`. */
export function createNativeConcatKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<ConcatAttrs>;
    // tfjs passes Concat's inputs as an array.
    const parts = Object.values(inputs).filter((t): t is TensorInfo => t !== undefined);
    const first = parts[0];
    if (
      first === undefined ||
      parts.length < 2 ||
      parts.some((t) => t.dtype !== 'float32' || size(t.shape) === 0) ||
      parts.reduce((n, t) => n + size(t.shape), 0) < LAYOUT_THRESHOLD
    ) {
      return original.kernelFunc(args);
    }
    const axis = tf.util.parseAxisParam(attrs.axis, first.shape)[0]!;
    const shapes = parts.map((t) => t.shape);
    tf.backend_util.assertParamsConsistent(shapes, axis);
    const out = backend.makeOutput(tf.backend_util.computeOutShape(shapes, axis), 'float32');
    native.concatRows(
      parts.map((t) => heapF32(backend, t)),
      size(first.shape.slice(0, axis)),
      heapF32(backend, out),
    );
    return out;
  });
}

/** `Slice` for wasm: large float32 slices on `native`. */
export function createNativeSliceKernel(original: KernelConfig, native: NativeBatchNorm): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SliceAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype !== 'float32' || x.shape.length === 0 || x.shape.length > MAX_RANK) return original.kernelFunc(args);
    const [begin, sizes] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs.begin, attrs.size);
    if (begin === undefined || sizes === undefined || size(sizes) < LAYOUT_THRESHOLD) return original.kernelFunc(args);
    const out = backend.makeOutput(sizes, 'float32');
    native.slice(heapF32(backend, x), x.shape, begin, sizes, heapF32(backend, out));
    return out;
  });
}

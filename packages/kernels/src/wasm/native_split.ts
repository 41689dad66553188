// Why: the wasm SplitV slices each output with a generic strided copy; splitting the tied MLM
// table [30522, 256] into the nesting chunks along its columns took ~100 ms a step. ONNX
// Runtime's Split does the same copies natively.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, SplitVAttrs, TensorInfo } from '@tensorflow/tfjs';

import type { NativeKernels } from '../native/onnxruntime.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** `SplitV` for wasm on native kernels (float32); other dtypes go to `original`. */
export function createNativeSplitVKernel(original: KernelConfig, native: NativeKernels): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SplitVAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype !== 'float32' || x.shape.length === 0) return original.kernelFunc(args);
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits, axis);
    const outs: TensorInfo[] = sizes.map((size) =>
      backend.makeOutput(
        x.shape.map((d, a) => (a === axis ? size : d)),
        'float32',
      ),
    );
    // Views only after the allocations: a heap growth detaches earlier ones.
    const heap = (t: TensorInfo): Float32Array => heapF32(backend, t);
    if (x.shape.some((d) => d === 0)) return outs;
    native.split(heap(x), x.shape, axis, sizes, outs.map(heap));
    return outs;
  };
  return replacing(original, kernelFunc);
}

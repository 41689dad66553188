// Why: the wasm backend's Sum and Mean transpose a non-trailing reduction axis first; the bias
// gradient of every nesting dim's [N, 30522] MLM logits (a sum over rows) took ~12 ms each, and
// BatchNorm's moments over N, H, W were 9% of a ResNet-18 step. Native
// kernels reduce any axis in place. Below SIZE_THRESHOLD elements a native call costs more than
// it saves, and the shipped kernel runs. (ONNX Runtime's binary ops were measured too, and were
// 2-4x slower than the shipped ones. At 2 threads and more the oneDNN addon runs those instead,
// and wherever the addon is built it runs every float32 sum of this size, over any axes, in an
// order fixed by the shape, where ReduceSum's rounding depends on the array's heap address:
// native_binary.ts wraps this kernel, which keeps the sums without the addon.)
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, SumAttrs, TensorInfo } from '@tensorflow/tfjs';

import type { NativeKernels } from '../native/onnxruntime.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Elements of the larger operand from which native kernels pay off (measured, ~10-20 us a call). */
export const SIZE_THRESHOLD = 1 << 16;

/** Elements of a tensor: what SIZE_THRESHOLD is compared with. */
export const elementCount = (t: TensorInfo): number => tf.util.sizeFromShape(t.shape);

/** `Sum` (or, with `mean`, `Mean`) for wasm: native for large float32 inputs. */
export function createNativeSumKernel(original: KernelConfig, native: NativeKernels, mean = false): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SumAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype !== 'float32' || elementCount(x) < SIZE_THRESHOLD) return original.kernelFunc(args);
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const shape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    const out = backend.makeOutput(shape, 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    const y = heapF32(backend, out);
    native.sum(heapF32(backend, x), x.shape, axes, y);
    if (mean) {
      const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
      for (let i = 0; i < y.length; i++) y[i] = y[i]! / count;
    }
    return out;
  });
}

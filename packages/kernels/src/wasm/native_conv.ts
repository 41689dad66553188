// Why: XNNPACK's wasm convolutions run near 20 GFLOP/s here and our forward-convolution form of
// the input gradient no faster; ONNX Runtime's native Conv and ConvTranspose (MLAS, AVX2 FMA)
// run 2-4x that on one thread. NHWC float32 goes to them (../native/onnxruntime.ts); NCHW and
// other dtypes keep the wasm kernels. There a stride-1 input gradient runs as a forward Conv with
// the rotated filter, not as ConvTranspose (whose col2im made it 1.2-3.5x slower on ResNet-18's
// layers), and an unpadded 1x1 convolution as a product over channels on the NHWC data
// (bench/resnet-kernels.mjs).
import * as tf from '@tensorflow/tfjs';
import type { Conv2DAttrs, Conv2DBackpropInputAttrs, KernelConfig } from '@tensorflow/tfjs';

import type { ConvGeometry, NativeKernels } from '../native/onnxruntime.js';
import { conv2dInfo, heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

function geometryOf(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  const { top, left, bottom, right } = info.padInfo;
  return {
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: [top, left, bottom, right],
  };
}

/**
 * Whether ONNX's Conv (`transposed` false) or ConvTranspose reproduces TF.js's shapes for this
 * geometry: ONNX floors the output size and bounds output_padding by the stride, where TF.js's
 * `ceil` rounding can read past the padded edge. Others stay on the wasm kernels.
 */
function onnxFits(info: tf.backend_util.Conv2DInfo, transposed: boolean): boolean {
  const { top, left, bottom, right } = info.padInfo;
  if (Math.min(top, left, bottom, right) < 0) return false;
  const axis = (size: number, out: number, stride: number, filter: number, dilation: number, pads: number): boolean => {
    const reach = (filter - 1) * dilation + 1;
    if (!transposed) return Math.floor((size + pads - reach) / stride) + 1 === out;
    const extra = size - (stride * (out - 1) + reach - pads);
    return extra >= 0 && extra < Math.max(stride, dilation);
  };
  return (
    axis(info.inHeight, info.outHeight, info.strideHeight, info.filterHeight, info.dilationHeight, top + bottom) &&
    axis(info.inWidth, info.outWidth, info.strideWidth, info.filterWidth, info.dilationWidth, left + right)
  );
}

/** `Conv2D` for wasm: native for NHWC float32 when given, else the shipped kernel. */
export function createConv2DKernel(get: (name: string) => KernelConfig, native?: NativeKernels): KernelConfig {
  const original = get(tf.Conv2D);
  if (native === undefined) return replacing(original, (args) => original.kernelFunc(args));
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<Conv2DAttrs>;
    const x = input(inputs, 'x');
    const filter = input(inputs, 'filter');
    if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32')
      return original.kernelFunc(args);
    const info = conv2dInfo(x.shape, filter.shape, attrs);
    if (!onnxFits(info, false)) return original.kernelFunc(args);
    const out = backend.makeOutput(info.outShape, 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    native.conv2d(
      heapF32(backend, x),
      x.shape,
      heapF32(backend, filter),
      filter.shape,
      heapF32(backend, out),
      info.outShape,
      geometryOf(info),
    );
    return out;
  });
}

/** Conv2DBackpropInput attrs; `dilations` is our extension (tfjs-core always means 1). */
type BackpropInputAttrs = Conv2DBackpropInputAttrs & { dilations?: number | [number, number] };

/** `Conv2DBackpropInput` for wasm on native kernels (NHWC float32), else `fallback`. */
export function createNativeConv2DBackpropInputKernel(fallback: KernelConfig, native: NativeKernels): KernelConfig {
  return replacing(fallback, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<BackpropInputAttrs>;
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    if (attrs.dataFormat === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32')
      return fallback.kernelFunc(args);
    const info = conv2dInfo(attrs.inputShape, filter.shape, attrs);
    if (!onnxFits(info, true)) return fallback.kernelFunc(args);
    const out = backend.makeOutput([...attrs.inputShape], 'float32');
    native.conv2dBackpropInput(
      heapF32(backend, dy),
      dy.shape,
      heapF32(backend, filter),
      filter.shape,
      heapF32(backend, out),
      attrs.inputShape,
      geometryOf(info),
    );
    return out;
  });
}

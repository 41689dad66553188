// Why: the shipped wasm Conv2DBackpropInput is a plain loop, ~6x slower than the XNNPACK
// forward convolution. The input gradient is a forward convolution too:
//   dX = Conv2D(dY with (s-1) zeros inserted between pixels, W flipped in space with its
//   in/out channels swapped), stride 1, dilation d,
// padded by (f-1)*d - pad before and by whatever makes the output as large as X after.
import * as tf from '@tensorflow/tfjs';
import type { Conv2DBackpropInputAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../../errors.js';
import { callKernel, dim, input, markOurs, pair, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Conv2DBackpropInput attrs; `dilations` is our extension (tfjs-core always means 1). */
export type Conv2DBackpropInputWasmAttrs = Conv2DBackpropInputAttrs & {
  dilations?: number | [number, number];
};

type Shape4 = [number, number, number, number];

/** `Conv2DBackpropInput` for wasm as a forward convolution; falls back to the shipped kernel. */
export function createConv2DBackpropInputKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.Conv2DBackpropInput);
  const conv2d = get(tf.Conv2D).kernelFunc;
  const transpose = get(tf.Transpose).kernelFunc;

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<Conv2DBackpropInputWasmAttrs>;
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    const channelsLast = attrs.dataFormat !== 'NCHW';
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as Shape4,
      attrs.strides,
      pair(attrs.dilations, 1),
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      channelsLast ? 'channelsLast' : 'channelsFirst',
    );
    const { batchSize: n, inChannels: cIn, outChannels: cOut, filterHeight: fh, filterWidth: fw } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { outHeight: ho, outWidth: wo } = info;
    const padTop = (fh - 1) * dh - info.padInfo.top;
    const padLeft = (fw - 1) * dw - info.padInfo.left;
    const padBottom = info.inHeight - 1 + info.padInfo.top - (ho - 1) * sh;
    const padRight = info.inWidth - 1 + info.padInfo.left - (wo - 1) * sw;
    // Explicit paddings wider than the filter would need negative padding here; rare enough
    // to leave to the shipped kernel (which also owns non-float32 errors, but knows no dilation).
    if (Math.min(padTop, padLeft, padBottom, padRight) < 0 || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
      if (dh > 1 || dw > 1) {
        throw new MrlError('unsupported', 'Conv2DBackpropInput on wasm: dilation with padding wider than the filter.');
      }
      return original.kernelFunc(args);
    }

    const owned: TensorInfo[] = [];
    try {
      let g = dy; // [N, Ho, Wo, Cout]
      if (!channelsLast) {
        g = callKernel(transpose, { x: dy }, backend, { perm: [0, 2, 3, 1] });
        owned.push(g);
      }
      if (sh > 1 || sw > 1) {
        const hz = (ho - 1) * sh + 1;
        const wz = (wo - 1) * sw + 1;
        const z = backend.makeOutput([n, hz, wz, cOut], 'float32');
        owned.push(z);
        const src = backend.typedArrayFromHeap(g);
        const dst = backend.typedArrayFromHeap(z);
        dst.fill(0);
        for (let b = 0; b < n; b++) {
          for (let y = 0; y < ho; y++) {
            let from = ((b * ho + y) * wo) * cOut;
            let to = ((b * hz + y * sh) * wz) * cOut;
            for (let x = 0; x < wo; x++, from += cOut, to += sw * cOut) {
              dst.set(src.subarray(from, from + cOut), to);
            }
          }
        }
        g = z;
      }

      // W [fh, fw, Cin, Cout] -> W' [fh, fw, Cout, Cin], W'[i, j, o, c] = W[fh-1-i, fw-1-j, c, o].
      const flipped = backend.makeOutput([fh, fw, cOut, cIn], 'float32');
      owned.push(flipped);
      const w = backend.typedArrayFromHeap(filter);
      const wf = backend.typedArrayFromHeap(flipped);
      for (let i = 0; i < fh; i++) {
        for (let j = 0; j < fw; j++) {
          const from = ((fh - 1 - i) * fw + (fw - 1 - j)) * cIn * cOut;
          const to = (i * fw + j) * cOut * cIn;
          for (let c = 0; c < cIn; c++) {
            for (let o = 0; o < cOut; o++) wf[to + o * cIn + c] = w[from + c * cOut + o]!;
          }
        }
      }

      const dx = callKernel(conv2d, { x: g, filter: flipped }, backend, {
        strides: [1, 1],
        dilations: [dh, dw],
        pad: [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]],
        dataFormat: 'NHWC',
      }); // [N, H, W, Cin]
      if (dim(dx.shape, 1) !== info.inHeight || dim(dx.shape, 2) !== info.inWidth) {
        owned.push(dx);
        throw new MrlError('unsupported', `Conv2DBackpropInput: internal shape mismatch [${dx.shape.join(', ')}].`);
      }
      if (channelsLast) return dx;
      owned.push(dx);
      return callKernel(transpose, { x: dx }, backend, { perm: [0, 3, 1, 2] });
    } finally {
      for (const t of owned) backend.disposeData(t.dataId);
    }
  };
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName: WASM,
    kernelFunc: markOurs(kernelFunc),
    ...(original.setupFunc === undefined ? {} : { setupFunc: original.setupFunc }),
  };
}

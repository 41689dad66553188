// Why: tfjs-backend-wasm 4.22 registers no DepthwiseConv2dNativeBackpropFilter, so depthwise
// (MobileNet-style) convs cannot train on wasm. Depthwise work is small (no sum over input
// channels), so a direct loop over the wasm heap, innermost over contiguous channels, is enough.
import * as tf from '@tensorflow/tfjs';
import type { DepthwiseConv2dNativeBackpropFilterAttrs, KernelConfig, KernelFunc } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import { input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

type Shape4 = [number, number, number, number];

/**
 * `DepthwiseConv2dNativeBackpropFilter` for wasm (NHWC):
 * dW[i, j, c, k] = sum_{n, y, x} X[n, y*s + i*d - pad, x*s + j*d - pad, c] * dY[n, y, x, c*m + k].
 */
export function createDepthwiseConv2dBackpropFilterKernel(): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<DepthwiseConv2dNativeBackpropFilterAttrs>;
    const x = input(inputs, 'x');
    const dy = input(inputs, 'dy');
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
      throw new MrlError(
        'unsupported',
        `DepthwiseConv2dNativeBackpropFilter on wasm needs float32, got ${x.dtype}/${dy.dtype}.`,
      );
    }
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as Shape4,
      attrs.filterShape,
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      true,
    );
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const co = info.outChannels; // c * multiplier
    const m = co / c;

    // Float64 sums: each entry adds up N*Ho*Wo products.
    const acc = new Float64Array(fh * fw * co);
    const out = backend.makeOutput([fh, fw, c, m], 'float32');
    const xs = backend.typedArrayFromHeap(x);
    const g = backend.typedArrayFromHeap(dy);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < ho; y++) {
        for (let xx = 0; xx < wo; xx++) {
          const gOff = ((b * ho + y) * wo + xx) * co;
          for (let i = 0; i < fh; i++) {
            const r = y * sh + i * dh - top;
            if (r < 0 || r >= h) continue;
            for (let j = 0; j < fw; j++) {
              const col = xx * sw + j * dw - left;
              if (col < 0 || col >= w) continue;
              const xOff = ((b * h + r) * w + col) * c;
              const aOff = (i * fw + j) * co;
              if (m === 1) {
                for (let ch = 0; ch < c; ch++) acc[aOff + ch]! += xs[xOff + ch]! * g[gOff + ch]!;
              } else {
                for (let ch = 0; ch < c; ch++) {
                  const v = xs[xOff + ch]!;
                  for (let k = 0; k < m; k++) acc[aOff + ch * m + k]! += v * g[gOff + ch * m + k]!;
                }
              }
            }
          }
        }
      }
    }
    backend.typedArrayFromHeap(out).set(acc);
    return out;
  };
  return { kernelName: tf.DepthwiseConv2dNativeBackpropFilter, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

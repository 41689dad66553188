// Why: tfjs-backend-wasm 4.22 registers no DepthwiseConv2dNativeBackpropInput, so a depthwise
// conv anywhere but first in a net cannot train on wasm. A direct loop over the wasm heap,
// innermost over contiguous channels, is enough for depthwise work.
import * as tf from '@tensorflow/tfjs';
import type { DepthwiseConv2dNativeBackpropInputAttrs, KernelConfig, KernelFunc } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import { input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

type Shape4 = [number, number, number, number];

/**
 * `DepthwiseConv2dNativeBackpropInput` for wasm (NHWC):
 * dX[n, y*s + i*d - pad, x*s + j*d - pad, c] += sum_k dY[n, y, x, c*m + k] * W[i, j, c, k].
 */
export function createDepthwiseConv2dBackpropInputKernel(): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<DepthwiseConv2dNativeBackpropInputAttrs>;
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32') {
      throw new MrlError(
        'unsupported',
        `DepthwiseConv2dNativeBackpropInput on wasm needs float32, got ${dy.dtype}/${filter.dtype}.`,
      );
    }
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as Shape4,
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
    const co = info.outChannels;
    const m = co / c;

    const out = backend.makeOutput([n, h, w, c], 'float32');
    const dx = backend.typedArrayFromHeap(out);
    const g = backend.typedArrayFromHeap(dy);
    const wt = backend.typedArrayFromHeap(filter);
    dx.fill(0);
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
              const wOff = (i * fw + j) * co;
              if (m === 1) {
                for (let ch = 0; ch < c; ch++) dx[xOff + ch]! += g[gOff + ch]! * wt[wOff + ch]!;
              } else {
                for (let ch = 0; ch < c; ch++) {
                  let sum = 0;
                  for (let k = 0; k < m; k++) sum += g[gOff + ch * m + k]! * wt[wOff + ch * m + k]!;
                  dx[xOff + ch]! += sum;
                }
              }
            }
          }
        }
      }
    }
    return out;
  };
  return { kernelName: tf.DepthwiseConv2dNativeBackpropInput, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

// Why: tfjs-backend-wasm 4.22 registers no Conv2DBackpropFilter, so no conv net can train on
// wasm. The filter gradient is itself a forward convolution, which XNNPACK runs fast:
//   dW[i, j, c, o] = sum_{n, y, x} X[n, y*s + i*d - pad, x*s + j*d - pad, c] * dY[n, y, x, o]
// is Conv2D(input X' = X as [C, H, W, N], filter dY' = dY as [Ho, Wo, N, Cout]) with the
// forward stride s as the dilation and the forward dilation d as the stride; its output
// [C, fh, fw, Cout] is transposed to the filter layout [fh, fw, C, Cout].
import * as tf from '@tensorflow/tfjs';
import type { Conv2DBackpropFilterAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../../errors.js';
import { callKernel, dim, input, markOurs, pair, swapOuterInner, view, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Conv2DBackpropFilter attrs; `dilations` is our extension (tfjs-core always means 1). */
export type Conv2DBackpropFilterWasmAttrs = Conv2DBackpropFilterAttrs & {
  dilations?: number | [number, number];
};

type Shape4 = [number, number, number, number];

/** `Conv2DBackpropFilter` for wasm, composed from the shipped Transpose and Conv2D kernels. */
export function createConv2DBackpropFilterKernel(get: (name: string) => KernelConfig): KernelConfig {
  const conv2d = get(tf.Conv2D).kernelFunc;
  const transpose = get(tf.Transpose).kernelFunc;
  const batchMatMul = get(tf.BatchMatMul).kernelFunc;

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<Conv2DBackpropFilterWasmAttrs>;
    const x = input(inputs, 'x');
    const dy = input(inputs, 'dy');
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
      throw new MrlError('unsupported', `Conv2DBackpropFilter on wasm needs float32 inputs, got ${x.dtype}/${dy.dtype}.`);
    }
    const channelsLast = attrs.dataFormat !== 'NCHW';
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as Shape4,
      attrs.filterShape,
      attrs.strides,
      pair(attrs.dilations, 1),
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      channelsLast ? 'channelsLast' : 'channelsFirst',
    );
    const { inChannels: cIn, outChannels: cOut, filterHeight: fh, filterWidth: fw } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const expectedDy = channelsLast
      ? [info.batchSize, info.outHeight, info.outWidth, cOut]
      : [info.batchSize, cOut, info.outHeight, info.outWidth];
    if (dy.shape.join() !== expectedDy.join()) {
      throw new MrlError(
        'invalid-argument',
        `Conv2DBackpropFilter: dy has shape [${dy.shape.join(', ')}], expected [${expectedDy.join(', ')}].`,
      );
    }
    const { top, left } = info.padInfo;
    // Padding after the input so that every tap of the last filter row/column is in range;
    // never negative: surplus output rows/columns are dropped when copying out below.
    const bottom = Math.max(0, (info.outHeight - 1) * sh + (fh - 1) * dh + 1 - info.inHeight - top);
    const right = Math.max(0, (info.outWidth - 1) * sw + (fw - 1) * dw + 1 - info.inWidth - left);

    const owned: TensorInfo[] = [];
    try {
      const pointwiseFits =
        fh === 1 && fw === 1 && top === 0 && left === 0 && channelsLast &&
        (info.outHeight - 1) * sh < info.inHeight && (info.outWidth - 1) * sw < info.inWidth; // no padded pixel read
      if (pointwiseFits) {
        return pointwise(backend, x, dy, info.outHeight, info.outWidth, sh, sw, owned);
      }
      const n = info.batchSize;
      const hw = info.inHeight * info.inWidth;
      const xT = channelsLast
        ? swapOuterInner(backend, x, n, hw, cIn) // [N, HW, C] -> [C, HW, N]
        : callKernel(transpose, { x: view(x, [n, cIn * hw]) }, backend, { perm: [1, 0] }); // [N, CHW] -> [CHW, N]
      owned.push(xT);
      const dyT = callKernel(transpose, { x: dy }, backend, { perm: channelsLast ? [1, 2, 0, 3] : [2, 3, 0, 1] }); // [Ho, Wo, N, Cout]
      owned.push(dyT);
      const r = callKernel(conv2d, { x: view(xT, [cIn, info.inHeight, info.inWidth, n]), filter: dyT }, backend, {
        strides: [dh, dw],
        dilations: [sh, sw],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dataFormat: 'NHWC',
      }); // [C, oh, ow, Cout], oh >= fh, ow >= fw
      owned.push(r);
      const oh = dim(r.shape, 1);
      const ow = dim(r.shape, 2);

      const out = backend.makeOutput([fh, fw, cIn, cOut], 'float32');
      // Views only after the last allocation: a heap growth detaches earlier ones.
      const src = backend.typedArrayFromHeap(r);
      const dst = backend.typedArrayFromHeap(out);
      for (let i = 0; i < fh; i++) {
        for (let j = 0; j < fw; j++) {
          for (let c = 0; c < cIn; c++) {
            const from = ((c * oh + i) * ow + j) * cOut;
            dst.set(src.subarray(from, from + cOut), ((i * fw + j) * cIn + c) * cOut);
          }
        }
      }
      return out;
    } finally {
      for (const t of owned) backend.disposeData(t.dataId);
    }
  };
  /**
   * 1x1 filters (ResNet shortcuts, pointwise convs): dW[c, o] = sum_p Xs[p, c] dY[p, o] with Xs
   * the strided pixels of X, i.e. one matmul Xs^T dY, no convolution and no full transpose of X.
   */
  function pointwise(
    backend: BackendWasm,
    x: TensorInfo,
    dy: TensorInfo,
    ho: number,
    wo: number,
    sh: number,
    sw: number,
    owned: TensorInfo[],
  ): TensorInfo {
    const [n, h, w, c] = x.shape as Shape4;
    const cOut = dim(dy.shape, 3);
    const p = n * ho * wo;
    let xs = x; // [P, C]
    if (sh > 1 || sw > 1) {
      xs = backend.makeOutput([p, c], 'float32');
      owned.push(xs);
      const src = backend.typedArrayFromHeap(x);
      const dst = backend.typedArrayFromHeap(xs);
      let to = 0;
      for (let b = 0; b < n; b++) {
        for (let y = 0; y < ho; y++) {
          for (let xx = 0; xx < wo; xx++, to += c) {
            const from = ((b * h + y * sh) * w + xx * sw) * c;
            for (let k = 0; k < c; k++) dst[to + k] = src[from + k]!;
          }
        }
      }
    }
    const xsT = swapOuterInner(backend, xs, p, 1, c); // [C, 1, P]
    owned.push(xsT);
    const out = callKernel(batchMatMul, { a: view(xsT, [1, c, p]), b: view(dy, [1, p, cOut]) }, backend, {
      transposeA: false,
      transposeB: false,
    }); // [1, C, Cout]
    return view(out, [1, 1, c, cOut]);
  }

  return { kernelName: tf.Conv2DBackpropFilter, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

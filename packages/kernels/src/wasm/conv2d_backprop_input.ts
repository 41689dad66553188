// Why: the shipped wasm Conv2DBackpropInput is a plain loop, ~6x slower than the XNNPACK
// forward convolution. The input gradient is a forward convolution too, of dY with the filter
// flipped in space and its in/out channels swapped:
// - stride 1: that convolution, padded by (f-1)*d - pad before and by whatever makes the
//   output as large as X after;
// - stride s > 1: the textbook form runs it over dY with s-1 zeros inserted between pixels,
//   but then 3/4 of the products (s = 2) are with zeros. Instead each of the s*s output phases
//   (rows h with (h + pad) % s == r, likewise columns) is a stride-1 convolution of dY with the
//   taps r, r+s, ... of the flipped filter, and the phase outputs are interleaved into dX: the
//   same sums at the forward convolution's cost.
import * as tf from '@tensorflow/tfjs';
import type { Conv2DBackpropInputAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import { callKernel, conv2dInfo, dim, input, replacing } from './util.js';

/** Conv2DBackpropInput attrs; `dilations` is our extension (tfjs-core always means 1). */
export type Conv2DBackpropInputWasmAttrs = Conv2DBackpropInputAttrs & {
  dilations?: number | [number, number];
};

type Shape4 = [number, number, number, number];

/** One spatial axis of the forward convolution. */
interface Axis {
  size: number; // of X
  outSize: number; // of dY
  filter: number;
  stride: number;
  dilation: number;
  pad: number; // before
}

/** One output phase along an axis: the stride-1 convolution over dY that yields its rows. */
export interface Phase {
  taps: number[]; // filter indices in correlation order (flipped)
  first: number; // first dX index of the phase; the phase holds first, first + stride, ...
  count: number;
  skip: number; // leading convolution outputs to drop (where the padding before would be < 0)
  padBefore: number;
  padAfter: number;
  outSize: number; // rows the convolution produces, >= skip + count
}

/**
 * Splits one axis of dX into its `stride` phases (one phase when the stride is 1). Phase r
 * holds dX index h = r - pad + s*q, which receives dY[q - k] * W[r + s*k] for every k: a
 * stride-1 correlation of dY with the taps r + s*(K-1), ..., r + s, r.
 */
export function phasesOf(a: Axis): Phase[] {
  const phases: Phase[] = [];
  for (let r = 0; r < a.stride; r++) {
    const k = r < a.filter ? Math.ceil((a.filter - r) / a.stride) : 0;
    const q0 = Math.ceil((a.pad - r) / a.stride);
    const q1 = Math.floor((a.size - 1 + a.pad - r) / a.stride);
    const count = Math.max(0, q1 - q0 + 1);
    const span = (k - 1) * a.dilation; // the correlation's reach, dilation only when stride is 1
    const before = span - q0;
    const padBefore = Math.max(0, before);
    const skip = Math.max(0, -before);
    const padAfter = Math.max(0, skip + count - a.outSize - padBefore + span);
    phases.push({
      taps: Array.from({ length: k }, (_, j) => r + a.stride * (k - 1 - j)),
      first: r - a.pad + a.stride * q0,
      count,
      skip,
      padBefore,
      padAfter,
      outSize: a.outSize + padBefore + padAfter - span,
    });
  }
  return phases;
}

/** Filter [fh, fw, Cin, Cout] -> [rows, cols, Cout, Cin] at the given taps (flips and swaps). */
function gatherFilter(backend: BackendWasm, filter: TensorInfo, rows: number[], cols: number[]): TensorInfo {
  const [, fw, cIn, cOut] = filter.shape as Shape4;
  const out = backend.makeOutput([rows.length, cols.length, cOut, cIn], 'float32');
  const w = backend.typedArrayFromHeap(filter);
  const wf = backend.typedArrayFromHeap(out);
  let to = 0;
  for (const i of rows) {
    for (const j of cols) {
      const from = (i * fw + j) * cIn * cOut;
      for (let o = 0; o < cOut; o++) {
        for (let c = 0; c < cIn; c++) wf[to++] = w[from + c * cOut + o]!;
      }
    }
  }
  return out;
}

/** `Conv2DBackpropInput` for wasm as forward convolutions (non-float32 goes to the shipped one). */
export function createConv2DBackpropInputKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.Conv2DBackpropInput);
  const conv2d = get(tf.Conv2D).kernelFunc;
  const transpose = get(tf.Transpose).kernelFunc;

  /** The stride-1 convolution of g for one phase pair: [N, ph.outSize, pw.outSize, Cin]. */
  const convPhase = (backend: BackendWasm, g: TensorInfo, filter: TensorInfo, ph: Phase, pw: Phase, dil: number[]) => {
    const f = gatherFilter(backend, filter, ph.taps, pw.taps);
    try {
      return callKernel(conv2d, { x: g, filter: f }, backend, {
        strides: [1, 1],
        dilations: dil,
        pad: [
          [0, 0],
          [ph.padBefore, ph.padAfter],
          [pw.padBefore, pw.padAfter],
          [0, 0],
        ],
        dataFormat: 'NHWC',
      });
    } finally {
      backend.disposeData(f.dataId);
    }
  };

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, attrs } = args as unknown as {
      inputs: Record<string, TensorInfo>;
      attrs: Conv2DBackpropInputWasmAttrs;
    };
    const backend = args.backend as BackendWasm;
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32') return original.kernelFunc(args);
    const channelsLast = attrs.dataFormat !== 'NCHW';
    const info = conv2dInfo(attrs.inputShape, filter.shape, attrs, channelsLast);
    const { batchSize: n, inChannels: cIn, inHeight: h, inWidth: w } = info;
    if ((info.strideHeight > 1 || info.strideWidth > 1) && (info.dilationHeight > 1 || info.dilationWidth > 1)) {
      throw new MrlError('unsupported', 'Conv2DBackpropInput on wasm: strides and dilations both > 1.');
    }
    const phRows = phasesOf({
      size: h,
      outSize: info.outHeight,
      filter: info.filterHeight,
      stride: info.strideHeight,
      dilation: info.dilationHeight,
      pad: info.padInfo.top,
    });
    const phCols = phasesOf({
      size: w,
      outSize: info.outWidth,
      filter: info.filterWidth,
      stride: info.strideWidth,
      dilation: info.dilationWidth,
      pad: info.padInfo.left,
    });
    const dil = [info.dilationHeight, info.dilationWidth];
    const sh = info.strideHeight;
    const sw = info.strideWidth;

    const owned: TensorInfo[] = [];
    try {
      let g = dy; // [N, Ho, Wo, Cout]
      if (!channelsLast) {
        g = callKernel(transpose, { x: dy }, backend, { perm: [0, 2, 3, 1] });
        owned.push(g);
      }
      const [r0] = phRows;
      const [c0] = phCols;
      let dx: TensorInfo; // [N, H, W, Cin]
      if (
        phRows.length === 1 &&
        phCols.length === 1 &&
        r0 !== undefined &&
        c0 !== undefined &&
        r0.skip === 0 &&
        r0.outSize === h &&
        c0.skip === 0 &&
        c0.outSize === w &&
        r0.taps.length > 0 &&
        c0.taps.length > 0
      ) {
        dx = convPhase(backend, g, filter, r0, c0, dil); // stride 1: the convolution is dX
      } else {
        dx = backend.makeOutput([n, h, w, cIn], 'float32');
        owned.push(dx);
        if ([...phRows, ...phCols].some((p) => p.taps.length === 0 && p.count > 0)) {
          backend.typedArrayFromHeap(dx).fill(0); // positions no filter tap reaches get no gradient
        }
        for (const ph of phRows) {
          for (const pw of phCols) {
            if (ph.count === 0 || pw.count === 0 || ph.taps.length === 0 || pw.taps.length === 0) continue;
            const part = convPhase(backend, g, filter, ph, pw, dil);
            const partH = dim(part.shape, 1);
            const partW = dim(part.shape, 2);
            const src = backend.typedArrayFromHeap(part);
            const dst = backend.typedArrayFromHeap(dx);
            for (let b = 0; b < n; b++) {
              for (let u = 0; u < ph.count; u++) {
                let from = ((b * partH + ph.skip + u) * partW + pw.skip) * cIn;
                let to = ((b * h + ph.first + u * sh) * w + pw.first) * cIn;
                for (let v = 0; v < pw.count; v++, from += cIn, to += sw * cIn) {
                  if (cIn < 32) {
                    for (let c = 0; c < cIn; c++) dst[to + c] = src[from + c]!;
                  } else {
                    dst.set(src.subarray(from, from + cIn), to);
                  }
                }
              }
            }
            backend.disposeData(part.dataId);
          }
        }
        owned.pop(); // dx is complete: the caller owns it
      }
      if (channelsLast) return dx;
      owned.push(dx);
      return callKernel(transpose, { x: dx }, backend, { perm: [0, 3, 1, 2] });
    } finally {
      for (const t of owned) backend.disposeData(t.dataId);
    }
  };
  return replacing(original, kernelFunc);
}

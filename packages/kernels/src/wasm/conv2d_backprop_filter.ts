// Why: tfjs-backend-wasm 4.22 registers no Conv2DBackpropFilter, so no conv net can train on
// wasm. NHWC (what our models use) goes through im2col and one GEMM per chunk of images:
//   dW^T [Cout, fh*fw*C] = dY^T [Cout, P] @ Xcol [P, fh*fw*C],  P = N*Ho*Wo,
// where row p of Xcol holds the fh*fw input patches (C-runs copied from X, zeros in the
// padding) under output pixel p. The GEMM does exactly the forward convolution's multiply-adds;
// the copies are linear in Xcol. This replaced a forward convolution of X with dY as a filter
// (below, kept for NCHW), which ran 2-3x the forward conv: XNNPACK gets a 32x32-tap filter
// with N input channels, and X and dY both had to be transposed first.
// On native kernels the whole gradient is one ONNX Runtime graph (`conv2dBackpropFilter` in
// ../native/onnxruntime.ts: strided slices of a padded X as [C, P] per tap, a product per tap
// with dY): im2col's copy loop in JavaScript and its transposed-operand GEMM took 28 ms of a
// [16, 32, 32, 64] 3x3 filter gradient, the graph 19 ms (bench/resnet-kernels.mjs).
// The forward-convolution form:
//   dW[i, j, c, o] = sum_{n, y, x} X[n, y*s + i*d - pad, x*s + j*d - pad, c] * dY[n, y, x, o]
// is Conv2D(input X' = X as [C, H, W, N], filter dY' = dY as [Ho, Wo, N, Cout]) with the
// forward stride s as the dilation and the forward dilation d as the stride; its output
// [C, fh, fw, Cout] is transposed to the filter layout [fh, fw, C, Cout].
import * as tf from '@tensorflow/tfjs';
import type {
  BatchMatMulAttrs,
  Conv2DBackpropFilterAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { nativeMatMul } from './native_mat_mul.js';
import { callKernel, conv2dInfo, dim, input, markOurs, swapOuterInner, view, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Conv2DBackpropFilter attrs; `dilations` is our extension (tfjs-core always means 1). */
export type Conv2DBackpropFilterWasmAttrs = Conv2DBackpropFilterAttrs & {
  dilations?: number | [number, number];
};

type Shape4 = [number, number, number, number];

/** `Conv2DBackpropFilter` for wasm, composed from the shipped Transpose and Conv2D kernels. */
export function createConv2DBackpropFilterKernel(
  get: (name: string) => KernelConfig,
  native?: NativeKernels,
  /** Most floats of one Xcol chunk on native kernels; small only in tests of the chunking. */
  nativeColChunk = NATIVE_COL_CHUNK,
  /**
   * On native kernels, one ONNX Runtime graph (strided slices of X, a product per tap) instead of
   * im2col in the wasm heap + one GEMM; off only to measure or test the im2col form.
   */
  nativeGraph = true,
): KernelConfig {
  const conv2d = get(tf.Conv2D).kernelFunc;
  const transpose = get(tf.Transpose).kernelFunc;
  const batchMatMul: KernelFunc =
    native === undefined
      ? get(tf.BatchMatMul).kernelFunc
      : ({ inputs, backend, attrs }) => {
          const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
          return nativeMatMul(
            native,
            backend as BackendWasm,
            input(inputs, 'a'),
            input(inputs, 'b'),
            transposeA,
            transposeB,
          );
        };

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<Conv2DBackpropFilterWasmAttrs>;
    const x = input(inputs, 'x');
    const dy = input(inputs, 'dy');
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
      throw new MrlError(
        'unsupported',
        `Conv2DBackpropFilter on wasm needs float32 inputs, got ${x.dtype}/${dy.dtype}.`,
      );
    }
    const channelsLast = attrs.dataFormat !== 'NCHW';
    const info = conv2dInfo(x.shape, attrs.filterShape, attrs, channelsLast);
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
        fh === 1 &&
        fw === 1 &&
        top === 0 &&
        left === 0 &&
        channelsLast &&
        (info.outHeight - 1) * sh < info.inHeight &&
        (info.outWidth - 1) * sw < info.inWidth; // no padded pixel read
      if (pointwiseFits) {
        return pointwise(backend, x, dy, info.outHeight, info.outWidth, sh, sw, owned);
      }
      if (channelsLast && native !== undefined) {
        if (nativeGraph && top >= 0 && left >= 0) {
          const out = backend.makeOutput([fh, fw, cIn, cOut], 'float32');
          native.conv2dBackpropFilter(
            backend.typedArrayFromHeap(x) as Float32Array,
            x.shape,
            backend.typedArrayFromHeap(dy) as Float32Array,
            dy.shape,
            backend.typedArrayFromHeap(out) as Float32Array,
            out.shape,
            { strides: [sh, sw], dilations: [dh, dw], pads: [top, left, 0, 0] },
          );
          return out;
        }
        return im2colNative(backend, x, dy, info, native, owned);
      }
      if (channelsLast) return im2colGemm(backend, x, dy, info, owned);
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
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
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
   * dW for NHWC by im2col + GEMM over chunks of output rows, dW [K, Cout] = sum over chunks of
   * XcolT [K, Pc] @ dY [Pc, Cout]. Two measured facts shape it: XNNPACK repacks the right
   * operand of every product (new weights each call), so that is dY, 9x smaller than Xcol for
   * a 3x3 filter; and its GEMM does not block the reduction axis, so all of P at once (16k
   * pixels at batch 16) streams both operands from memory once per output tile, while chunks of
   * ~COL_CHUNK floats stay in cache.
   */
  function im2colGemm(
    backend: BackendWasm,
    x: TensorInfo,
    dy: TensorInfo,
    info: tf.backend_util.Conv2DInfo,
    owned: TensorInfo[],
  ): TensorInfo {
    const {
      batchSize: n,
      inHeight: h,
      inWidth: w,
      inChannels: c,
      outHeight: ho,
      outWidth: wo,
      outChannels: cOut,
    } = info;
    const {
      filterHeight: fh,
      filterWidth: fw,
      strideHeight: sh,
      strideWidth: sw,
      dilationHeight: dh,
      dilationWidth: dw,
    } = info;
    const geometry: Im2colGeometry = {
      h,
      w,
      c,
      ho,
      wo,
      fh,
      fw,
      sh,
      sw,
      dh,
      dw,
      top: info.padInfo.top,
      left: info.padInfo.left,
    };
    const k = fh * fw * c;
    const rows = n * ho; // output rows (image, oy), wo pixels each
    const rowsPerChunk = Math.max(1, Math.min(rows, Math.round(Math.max(MIN_CHUNK_PIXELS, COL_CHUNK / k) / wo)));
    const single = rowsPerChunk >= rows;
    const out = single ? null : backend.makeOutput([fh, fw, c, cOut], 'float32');
    const mark = owned.length;
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const r1 = Math.min(rows, r0 + rowsPerChunk);
      const p = (r1 - r0) * wo;
      const colT = own(backend.makeOutput([1, k, p], 'float32'));
      const dyChunk = single ? view(dy, [1, p, cOut]) : own(backend.makeOutput([1, p, cOut], 'float32'));
      // Views only after the allocations: a heap growth detaches earlier ones.
      if (!single)
        backend
          .typedArrayFromHeap(dyChunk)
          .set(backend.typedArrayFromHeap(dy).subarray(r0 * wo * cOut, r1 * wo * cOut));
      fillIm2colTransposed(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(colT), r0, r1, geometry);
      const r = callKernel(batchMatMul, { a: colT, b: dyChunk }, backend, { transposeA: false, transposeB: false }); // [1, K, Cout]
      if (single) return view(r, [fh, fw, c, cOut]);
      own(r);
      const part = backend.typedArrayFromHeap(r);
      const acc = backend.typedArrayFromHeap(out!);
      if (r0 === 0) acc.set(part);
      else for (let i = 0; i < acc.length; i++) acc[i]! += part[i]!;
      for (const t of owned.splice(mark)) backend.disposeData(t.dataId);
    }
    return out!;

    function own(t: TensorInfo): TensorInfo {
      owned.push(t);
      return t;
    }
  }

  /**
   * dW [K, Cout] = Xcol^T [K, P] @ dY [P, Cout] on native kernels, which block every axis
   * themselves and take Xcol transposed: Xcol is the plain im2col (rows of C-runs, fast to
   * fill), in chunks of whole output rows of at most NATIVE_COL_CHUNK floats, and the chunk's dY
   * is a view of dY's own memory.
   */
  function im2colNative(
    backend: BackendWasm,
    x: TensorInfo,
    dy: TensorInfo,
    info: tf.backend_util.Conv2DInfo,
    native: NativeKernels,
    owned: TensorInfo[],
  ): TensorInfo {
    const {
      batchSize: n,
      inHeight: h,
      inWidth: w,
      inChannels: c,
      outHeight: ho,
      outWidth: wo,
      outChannels: cOut,
    } = info;
    const {
      filterHeight: fh,
      filterWidth: fw,
      strideHeight: sh,
      strideWidth: sw,
      dilationHeight: dh,
      dilationWidth: dw,
    } = info;
    const geometry: Im2colGeometry = {
      h,
      w,
      c,
      ho,
      wo,
      fh,
      fw,
      sh,
      sw,
      dh,
      dw,
      top: info.padInfo.top,
      left: info.padInfo.left,
    };
    const k = fh * fw * c;
    const rows = n * ho;
    const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(nativeColChunk / (k * wo))));
    const out = backend.makeOutput([fh, fw, c, cOut], 'float32');
    const col = backend.makeOutput([rowsPerChunk * wo, k], 'float32');
    owned.push(col);
    const partial = rowsPerChunk < rows ? backend.makeOutput([k, cOut], 'float32') : null;
    if (partial !== null) owned.push(partial);
    // Views only after the last allocation: a heap growth detaches earlier ones.
    const xs = backend.typedArrayFromHeap(x) as Float32Array;
    const dys = backend.typedArrayFromHeap(dy) as Float32Array;
    const cols = backend.typedArrayFromHeap(col) as Float32Array;
    const acc = backend.typedArrayFromHeap(out) as Float32Array;
    const part = partial === null ? null : (backend.typedArrayFromHeap(partial) as Float32Array);
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const r1 = Math.min(rows, r0 + rowsPerChunk);
      const p = (r1 - r0) * wo;
      fillIm2col(xs, cols, r0, r1, geometry);
      const target = r0 === 0 || part === null ? acc : part;
      native.matMul(
        cols.subarray(0, p * k),
        [p, k],
        dys.subarray(r0 * wo * cOut, r1 * wo * cOut),
        [p, cOut],
        target,
        [k, cOut],
        true,
        false,
      );
      if (target !== acc) for (let i = 0; i < acc.length; i++) acc[i]! += target[i]!;
    }
    return out;
  }

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

/** Target floats of one Xcol chunk (1 MiB): a chunk and the GEMM's panels stay in L2. */
const COL_CHUNK = 2 ** 18;
/** Fewest pixels per chunk: shorter reductions lose more to per-product overhead than they gain. */
const MIN_CHUNK_PIXELS = 128;

/** Most floats of one Xcol chunk on native kernels (64 MiB). */
const NATIVE_COL_CHUNK = 2 ** 24;

type Heap = Float32Array | Int32Array | Uint8Array;

/**
 * Xcol [P, K] for output rows [r0, r1) (row = image * Ho + oy) of X (NHWC), K = fh*fw*C in the
 * filter's (i, j, c) order: row (image, oy, ox) holds, for each tap (i, j), the C channels of X at
 * (oy*sh + i*dh - top, ox*sw + j*dw - left), zeros outside X. Each copy is one contiguous C-run.
 */
export function fillIm2col(xs: Float32Array, col: Float32Array, r0: number, r1: number, g: Im2colGeometry): void {
  const { h, w, c, ho, wo, fh, fw, sh, sw, dh, dw, top, left } = g;
  const k = fh * fw * c;
  const short = c < 32; // below this, a loop beats subarray + set
  let to = 0;
  for (let row = r0; row < r1; row++) {
    const b = Math.floor(row / ho);
    const oy = row - b * ho;
    for (let ox = 0; ox < wo; ox++, to += k) {
      let at = to;
      for (let i = 0; i < fh; i++) {
        const y = oy * sh + i * dh - top;
        for (let j = 0; j < fw; j++, at += c) {
          const xx = ox * sw + j * dw - left;
          if (y < 0 || y >= h || xx < 0 || xx >= w) {
            col.fill(0, at, at + c);
            continue;
          }
          const from = ((b * h + y) * w + xx) * c;
          if (short) for (let ci = 0; ci < c; ci++) col[at + ci] = xs[from + ci]!;
          else col.set(xs.subarray(from, from + c), at);
        }
      }
    }
  }
}

/** The NHWC convolution geometry im2col needs. */
export interface Im2colGeometry {
  h: number;
  w: number;
  c: number;
  ho: number;
  wo: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  top: number;
  left: number;
}

/**
 * XcolT [K, P] for output rows [r0, r1) (row = image * Ho + oy) of X (NHWC), K = fh*fw*C in the
 * filter's (i, j, c) order: entry ((i, j, c), pixel (image, oy, ox)) is X at
 * (oy*sh + i*dh - top, ox*sw + j*dw - left, c), zero outside X. Each (tap, output row) reads one
 * input row (in L1) and writes runs of Wo along the pixel axis.
 */
export function fillIm2colTransposed(xs: Heap, colT: Heap, r0: number, r1: number, g: Im2colGeometry): void {
  const { h, w, c, ho, wo, fh, fw, sh, sw, dh, dw, top, left } = g;
  const p = (r1 - r0) * wo;
  // Valid output columns [oxLo, oxHi) of each filter column j (outside: zero padding).
  const oxLo: number[] = [];
  const oxHi: number[] = [];
  for (let j = 0; j < fw; j++) {
    const off = j * dw - left;
    oxLo.push(Math.min(wo, Math.max(0, Math.ceil(-off / sw))));
    oxHi.push(Math.max(0, Math.min(wo, Math.floor((w - 1 - off) / sw) + 1)));
  }
  for (let row = r0; row < r1; row++) {
    const b = Math.floor(row / ho);
    const oy = row - b * ho;
    const pBase = (row - r0) * wo;
    for (let i = 0; i < fh; i++) {
      const y = oy * sh + i * dh - top;
      const inside = y >= 0 && y < h;
      const rowBase = (b * h + y) * w;
      for (let j = 0; j < fw; j++) {
        const lo = inside ? oxLo[j]! : 0;
        const hi = inside ? Math.max(lo, oxHi[j]!) : 0;
        const off = j * dw - left;
        for (let ci = 0; ci < c; ci++) {
          const to = ((i * fw + j) * c + ci) * p + pBase;
          if (lo > 0) colT.fill(0, to, to + lo);
          if (hi < wo) colT.fill(0, to + Math.max(lo, hi), to + wo);
          let from = (rowBase + lo * sw + off) * c + ci;
          const step = sw * c;
          for (let ox = lo; ox < hi; ox++, from += step) colT[to + ox] = xs[from]!;
        }
      }
    }
  }
}

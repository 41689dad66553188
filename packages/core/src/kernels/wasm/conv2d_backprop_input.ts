// Why: the shipped wasm Conv2DBackpropInput is a plain loop, ~6x slower than the XNNPACK
// forward convolution. The input gradient is a forward convolution too, of dY with the filter
// flipped in space and its in/out channels swapped:
// - stride 1: that convolution directly, padded by (f-1)*d - pad before and by whatever makes
//   the output as large as X after;
// - stride s > 1: conceptually the same over dY with s-1 zeros inserted between pixels, but
//   3/4 of those products (s = 2) would be with zeros. Instead each of the s*s output phases
//   (rows h with (h + pad) % s == r, likewise columns) is a stride-1 convolution of dY with the
//   taps r, r+s, ... of the flipped filter, and the phase outputs are interleaved into dX. Same
//   result, the forward convolution's cost. Zero insertion remains the fallback for explicit
//   paddings wider than the filter, and the shipped kernel the fallback of that.
import * as tf from '@tensorflow/tfjs';
import type { Conv2DBackpropInputAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../../errors.js';
import { callKernel, dim, input, markOurs, pair, WASM } from './util.js';

/** Conv2DBackpropInput attrs; `dilations` is our extension (tfjs-core always means 1). */
export type Conv2DBackpropInputWasmAttrs = Conv2DBackpropInputAttrs & {
  dilations?: number | [number, number];
};

type Shape4 = [number, number, number, number];

/** What one spatial axis needs: sizes, stride, dilation, padding before. */
interface Axis {
  size: number; // of X
  outSize: number; // of dY
  filter: number;
  stride: number;
  dilation: number;
  pad: number;
}

/** One output phase along an axis: the filter taps it uses and where its rows go in dX. */
interface Phase {
  taps: number[]; // filter indices, already in flipped (correlation) order
  first: number; // first dX index of this phase
  count: number; // dX indices first, first + stride, ...
  padBefore: number;
  padAfter: number;
}

/** The stride-1 convolution that gives dX along one axis (s = 1, or zero-inserted dY). */
function directAxis(a: Axis, zeroInserted: boolean): Phase | undefined {
  const dySize = zeroInserted ? (a.outSize - 1) * a.stride + 1 : a.outSize;
  const padBefore = (a.filter - 1) * a.dilation - a.pad;
  const padAfter = a.size - 1 + a.pad - (a.outSize - 1) * a.stride;
  if (padBefore < 0 || padAfter < 0 || dySize + padBefore + padAfter - (a.filter - 1) * a.dilation !== a.size) return undefined;
  const taps = Array.from({ length: a.filter }, (_, k) => a.filter - 1 - k);
  return { taps, first: 0, count: a.size, padBefore, padAfter };
}

/** The s phases along a strided axis (dilation 1); undefined when one would need cropping. */
function phasesOf(a: Axis): Phase[] | undefined {
  const phases: Phase[] = [];
  for (let r = 0; r < a.stride; r++) {
    const k = r < a.filter ? Math.ceil((a.filter - r) / a.stride) : 0;
    const q0 = Math.ceil((a.pad - r) / a.stride);
    const q1 = Math.floor((a.size - 1 + a.pad - r) / a.stride);
    const count = Math.max(0, q1 - q0 + 1);
    const padBefore = k - 1 - q0;
    if (count > 0 && k > 0 && padBefore < 0) return undefined;
    phases.push({
      taps: Array.from({ length: k }, (_, j) => r + a.stride * (k - 1 - j)),
      first: r - a.pad + a.stride * q0,
      count,
      padBefore,
      // Never negative: surplus output rows are simply not copied out.
      padAfter: Math.max(0, count - a.outSize - padBefore + k - 1),
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

/** `Conv2DBackpropInput` for wasm as forward convolutions; falls back to the shipped kernel. */
export function createConv2DBackpropInputKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.Conv2DBackpropInput);
  const conv2d = get(tf.Conv2D).kernelFunc;
  const transpose = get(tf.Transpose).kernelFunc;

  /** Stride-1 convolution of g with the taps of one phase pair: [N, >=rows, >=cols, Cin]. */
  const convPhase = (backend: BackendWasm, g: TensorInfo, filter: TensorInfo, ph: Phase, pw: Phase, dil: number[]) => {
    const f = gatherFilter(backend, filter, ph.taps, pw.taps);
    try {
      return callKernel(conv2d, { x: g, filter: f }, backend, {
        strides: [1, 1],
        dilations: dil,
        pad: [[0, 0], [ph.padBefore, ph.padAfter], [pw.padBefore, pw.padAfter], [0, 0]],
        dataFormat: 'NHWC',
      });
    } finally {
      backend.disposeData(f.dataId);
    }
  };

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, attrs } = args as unknown as { inputs: Record<string, TensorInfo>; attrs: Conv2DBackpropInputWasmAttrs };
    const backend = args.backend as BackendWasm;
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
    const { batchSize: n, inChannels: cIn, outChannels: cOut } = info;
    const rows: Axis = {
      size: info.inHeight,
      outSize: info.outHeight,
      filter: info.filterHeight,
      stride: info.strideHeight,
      dilation: info.dilationHeight,
      pad: info.padInfo.top,
    };
    const cols: Axis = {
      size: info.inWidth,
      outSize: info.outWidth,
      filter: info.filterWidth,
      stride: info.strideWidth,
      dilation: info.dilationWidth,
      pad: info.padInfo.left,
    };
    const strided = rows.stride > 1 || cols.stride > 1;
    const dilated = rows.dilation > 1 || cols.dilation > 1;
    const dil = [rows.dilation, cols.dilation];

    const phased = strided && !dilated ? ([phasesOf(rows), phasesOf(cols)] as const) : undefined;
    const direct = [directAxis(rows, strided), directAxis(cols, strided)] as const;
    const usePhases = phased?.[0] !== undefined && phased[1] !== undefined;
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || (!usePhases && (direct[0] === undefined || direct[1] === undefined))) {
      if (dilated) {
        throw new MrlError('unsupported', 'Conv2DBackpropInput on wasm: dilation with padding wider than the filter.');
      }
      return original.kernelFunc(args); // explicit padding wider than the filter, or not float32
    }

    const owned: TensorInfo[] = [];
    try {
      let g = dy; // [N, Ho, Wo, Cout]
      if (!channelsLast) {
        g = callKernel(transpose, { x: dy }, backend, { perm: [0, 2, 3, 1] });
        owned.push(g);
      }
      let dx: TensorInfo; // [N, H, W, Cin]
      if (usePhases) {
        dx = backend.makeOutput([n, rows.size, cols.size, cIn], 'float32');
        owned.push(dx);
        const [phRows, phCols] = phased as readonly [Phase[], Phase[]];
        if (phRows.some((p) => p.taps.length === 0 && p.count > 0) || phCols.some((p) => p.taps.length === 0 && p.count > 0)) {
          backend.typedArrayFromHeap(dx).fill(0); // phases no filter tap reaches get no gradient
        }
        for (const ph of phRows) {
          for (const pw of phCols) {
            if (ph.count === 0 || pw.count === 0 || ph.taps.length === 0 || pw.taps.length === 0) continue;
            const part = convPhase(backend, g, filter, ph, pw, dil);
            const ph0 = dim(part.shape, 1);
            const pw0 = dim(part.shape, 2);
            const src = backend.typedArrayFromHeap(part);
            const dst = backend.typedArrayFromHeap(dx);
            for (let b = 0; b < n; b++) {
              for (let u = 0; u < ph.count; u++) {
                const h = ph.first + u * rows.stride;
                let from = ((b * ph0 + u) * pw0) * cIn;
                for (let v = 0; v < pw.count; v++, from += cIn) {
                  const to = ((b * rows.size + h) * cols.size + pw.first + v * cols.stride) * cIn;
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
        owned.pop();
      } else {
        const [dr, dc] = direct as readonly [Phase, Phase];
        if (strided) {
          // Fallback: dY with stride-1 zeros between pixels, then one stride-1 convolution.
          const hz = (rows.outSize - 1) * rows.stride + 1;
          const wz = (cols.outSize - 1) * cols.stride + 1;
          const z = backend.makeOutput([n, hz, wz, cOut], 'float32');
          owned.push(z);
          const src = backend.typedArrayFromHeap(g);
          const dst = backend.typedArrayFromHeap(z);
          dst.fill(0);
          for (let b = 0; b < n; b++) {
            for (let y = 0; y < rows.outSize; y++) {
              let from = ((b * rows.outSize + y) * cols.outSize) * cOut;
              let to = ((b * hz + y * rows.stride) * wz) * cOut;
              for (let x = 0; x < cols.outSize; x++, from += cOut, to += cols.stride * cOut) {
                dst.set(src.subarray(from, from + cOut), to);
              }
            }
          }
          g = z;
        }
        dx = convPhase(backend, g, filter, dr, dc, dil);
        if (dim(dx.shape, 1) !== rows.size || dim(dx.shape, 2) !== cols.size) {
          owned.push(dx);
          throw new MrlError('unsupported', `Conv2DBackpropInput: internal shape mismatch [${dx.shape.join(', ')}].`);
        }
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

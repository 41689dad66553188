// Why: the convolutions are about 80% of a ResNet-18 training step, and ONNX Runtime runs a
// trained filter through im2col + SGEMM (its direct NCHWc kernels only forward and for the
// stride-1 input gradient; never the filter gradient, 31% of the step). PyTorch's CPU
// convolutions are oneDNN's direct JIT kernels, all three of them; Debian ships oneDNN
// (libdnnl-dev), and `native/onednn.cc` is a small Node-API addon over it, built by
// `native/build.sh` where a compiler and the library are present. It is optional: without it the
// convolutions stay on ONNX Runtime (`loadOneDnnConvolutions` returns undefined).
import { createRequire } from 'node:module';
import { MrlError } from '../errors.js';
import type { ConvGeometry, NativeKernels } from './onnxruntime.js';

/** The addon's functions (native/onednn.cc). */
export interface OneDnnAddon {
  /** kind 0 forward (x, w, y), 1 backward data (dy, w, dx), 2 backward weights (x, dy, dw). */
  conv(kind: number, dims: Int32Array, a: Float32Array, b: Float32Array, out: Float32Array): void;
  impl(kind: number, dims: Int32Array): string;
  setThreads(threads: number): void;
  version(): string;
}

/**
 * Where `native/build.sh` puts the addon, from `dist/native/` (and `src/native/` in tests). Only
 * this file is ever loaded; `MRL_ONEDNN=off` leaves it unloaded (everything on ONNX Runtime).
 * The CPU speed pack (`scripts/gpu-check/pack.sh --cpu`) lays its bundle out to keep this path.
 */
const ADDON_PATH = '../../native/build/onednn.node';

/** The three convolutions of {@link NativeKernels}, on oneDNN. */
export type OneDnnConvolutions = Pick<NativeKernels, 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter'> & {
  /** `oneDNN 2.6.3`, for the backend's log line. */
  readonly detail: string;
  /** The implementation oneDNN picked for a convolution (`brgconv:avx512_core`...), for benches. */
  implementation(
    which: 'forward' | 'inputGradient' | 'filterGradient',
    xShape: readonly number[],
    filterShape: readonly number[],
    yShape: readonly number[],
    geometry: ConvGeometry,
  ): string;
};

/** libgomp's spin count before its workers sleep, set when the addon loads (see `loadAddon`). */
export const OPENMP_SPIN_COUNT = 10_000;

let addon: OneDnnAddon | null | undefined = null; // null: not tried yet; undefined: not here
let addonThreads = 0;

/** The addon's module, loaded once (undefined: not built or does not load); also for `./onednn_matmul.ts`. */
export function loadAddon(): OneDnnAddon | undefined {
  if (addon === null && process.env['MRL_ONEDNN'] === 'off') addon = undefined;
  if (addon === null) {
    // libgomp reads its spin count once, when it loads with the addon. Its workers spin for
    // GOMP_SPINCOUNT=10000 turns after a parallel region (under a millisecond here: 0.9 ms of CPU),
    // then sleep: long enough to bridge the tape's dispatch between two kernels of a step (waking
    // a sleeping thread for every region cost ResNet-18 3-6% at 2 threads), short enough not to
    // spin through the main thread's longer single-threaded work, nor into another process's turn
    // on the cores (50000, 1.8 ms, doubled a neighbouring PyTorch's 2-thread MLP step). libgomp's
    // own default is 300000 (8 ms here; PyTorch's setting), `OMP_WAIT_POLICY=passive` is 0. A
    // user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and the variable is unset again so that child
    // processes (PyTorch in bench/speed.mjs) keep their own defaults.
    const userSetting = process.env['OMP_WAIT_POLICY'] ?? process.env['GOMP_SPINCOUNT'];
    if (userSetting === undefined) process.env['GOMP_SPINCOUNT'] = String(OPENMP_SPIN_COUNT);
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as OneDnnAddon;
    } catch {
      addon = undefined;
    } finally {
      if (userSetting === undefined) delete process.env['GOMP_SPINCOUNT'];
    }
  }
  return addon;
}

/** Whether the oneDNN addon is built and loads here. */
export function oneDnnAvailable(): boolean {
  return loadAddon() !== undefined;
}

/**
 * The geometry as the addon takes it, or undefined where oneDNN's shape rule does not hold (the
 * caller then keeps ONNX Runtime): oneDNN needs `(size - reach + pad_l + pad_r) / stride + 1` to
 * give the output size, with pad_r > -stride, which fixes pad_r from the shapes.
 */
function dims(
  xShape: readonly number[],
  filterShape: readonly number[],
  yShape: readonly number[],
  geometry: ConvGeometry,
): Int32Array | undefined {
  const [n, h, w, c] = xShape as [number, number, number, number];
  const [fh, fw, cIn, cOut] = filterShape as [number, number, number, number];
  const [, ho, wo, yc] = yShape as [number, number, number, number];
  const { strides, dilations, pads } = geometry;
  const [top, left] = pads;
  if (xShape.length !== 4 || filterShape.length !== 4 || yShape.length !== 4 || cIn !== c || yc !== cOut) return;
  if ([n, h, w, c, fh, fw, cOut, ho, wo].some((d) => d < 1) || top < 0 || left < 0) return;
  const padEnd = (size: number, out: number, filter: number, axis: 0 | 1, before: number): number =>
    (out - 1) * strides[axis] + (filter - 1) * dilations[axis] + 1 - size - before;
  if (padEnd(h, ho, fh, 0, top) <= -strides[0] || padEnd(w, wo, fw, 1, left) <= -strides[1]) return;
  return Int32Array.of(n, h, w, c, fh, fw, cOut, ho, wo, strides[0], strides[1], dilations[0], dilations[1], top, left);
}

/**
 * The NHWC float32 convolutions on oneDNN, each falling back to `fallback`'s (ONNX Runtime's) for
 * a geometry oneDNN does not take (see {@link dims}) or an empty tensor; `undefined` when the addon
 * is not built or does not load. With `required`, a missing addon is an `MrlError` instead.
 * They run on `threads` OpenMP threads.
 *
 * @example
 * const conv = loadOneDnnConvolutions({ threads: 1, fallback: ort });
 * conv?.conv2d(x, [16, 32, 32, 64], w, [3, 3, 64, 64], y, [16, 32, 32, 64], geometry);
 */
export function loadOneDnnConvolutions(options: {
  threads: number;
  fallback: Pick<NativeKernels, 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter'>;
  required?: boolean;
}): OneDnnConvolutions | undefined {
  const lib = loadAddon();
  if (lib === undefined) {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "convolution 'onednn' needs the oneDNN addon (packages/kernels/native/build/onednn.node), which is not built, does not load here or is turned off (MRL_ONEDNN=off).",
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose convolution onnxruntime.',
    );
  }
  const { fallback, threads } = options;
  // OpenMP's thread count is per process; kernels loaded with another count may run in between.
  const run = (kind: number, d: Int32Array, a: Float32Array, b: Float32Array, out: Float32Array): void => {
    if (addonThreads !== threads) {
      lib.setThreads(threads);
      addonThreads = threads;
    }
    lib.conv(kind, d, a, b, out);
  };
  const version = lib.version();
  return {
    detail: `oneDNN ${version}`,
    conv2d(x, xShape, filter, filterShape, y, yShape, geometry) {
      const d = dims(xShape, filterShape, yShape, geometry);
      if (d === undefined) return fallback.conv2d(x, xShape, filter, filterShape, y, yShape, geometry);
      run(0, d, x, filter, y);
    },
    conv2dBackpropInput(dy, dyShape, filter, filterShape, dx, dxShape, geometry) {
      const d = dims(dxShape, filterShape, dyShape, geometry);
      if (d === undefined) {
        return fallback.conv2dBackpropInput(dy, dyShape, filter, filterShape, dx, dxShape, geometry);
      }
      run(1, d, dy, filter, dx);
    },
    conv2dBackpropFilter(x, xShape, dy, dyShape, dw, dwShape, geometry) {
      const d = dims(xShape, dwShape, dyShape, geometry);
      if (d === undefined) return fallback.conv2dBackpropFilter(x, xShape, dy, dyShape, dw, dwShape, geometry);
      run(2, d, x, dy, dw);
    },
    implementation(which, xShape, filterShape, yShape, geometry) {
      const d = dims(xShape, filterShape, yShape, geometry);
      if (d === undefined) return 'onnxruntime (outside oneDNN shape rule)';
      return lib.impl(which === 'forward' ? 0 : which === 'inputGradient' ? 1 : 2, d);
    },
  };
}

// Why: the SGD-momentum update reads and writes every parameter of the model (11M in ResNet-18,
// ~9 ms a step on the wasm SIMD kernel of ../wasm/optimizer_updates.ts, one thread). With the
// convolutions on both cores it was one of the parts of a 2-thread step left on one.
// `native/sgd_update.cc`, built into the same optional addon, runs the same update on OpenMP
// threads with the same float operations in the same order: the same bits as the wasm kernel.
// Without the addon `loadOneDnnUpdates` returns undefined and the update stays on wasm.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** The addon's update function (native/sgd_update.cc). */
interface UpdatesAddon extends OneDnnAddon {
  sgdMomentum(
    threads: number,
    p: Float32Array,
    g: Float32Array,
    buf: Float32Array,
    pOut: Float32Array,
    bufOut: Float32Array,
    lr: number,
    momentum: number,
    weightDecay: number,
    nesterov: boolean,
  ): void;
}

/** Optimiser updates on the addon's threads. */
export interface NativeUpdates {
  /** `oneDNN addon`, for the backend's log line. */
  readonly detail: string;
  /**
   * PyTorch's SGD with momentum, one step: d = g + weightDecay p; bufOut = momentum buf + d;
   * pOut = p - lr (nesterov ? d + momentum bufOut : bufOut). All arrays of one length.
   */
  sgdMomentum(
    p: Float32Array,
    g: Float32Array,
    buf: Float32Array,
    pOut: Float32Array,
    bufOut: Float32Array,
    lr: number,
    momentum: number,
    weightDecay: number,
    nesterov: boolean,
  ): void;
}

function loadUpdatesAddon(): UpdatesAddon | undefined {
  const lib = loadAddon() as Partial<UpdatesAddon> | undefined;
  return typeof lib?.sgdMomentum === 'function' ? (lib as UpdatesAddon) : undefined;
}

/** Whether the addon is built with its update kernels and loads here. */
export function oneDnnUpdatesAvailable(): boolean {
  return loadUpdatesAddon() !== undefined;
}

/**
 * The optimiser updates on the addon's `threads` OpenMP threads; `undefined` when the addon is not
 * built, does not load, predates them or is turned off (`MRL_ONEDNN=off`); with `required`, that
 * is an `MrlError` instead.
 *
 * @example
 * const updates = loadOneDnnUpdates({ threads: 2 });
 * updates?.sgdMomentum(p, g, buf, pOut, bufOut, 0.01, 0.9, 0, false);
 */
export function loadOneDnnUpdates(options: { threads: number; required?: boolean }): NativeUpdates | undefined {
  const lib = loadUpdatesAddon();
  if (lib === undefined) {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "sgd 'onednn' needs the oneDNN addon with its update kernels (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      'Install g++ and libdnnl-dev (apt-get install g++ libdnnl-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose sgd wasm.',
    );
  }
  const { threads } = options;
  return {
    detail: 'oneDNN addon',
    sgdMomentum(p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov) {
      if (p.length === 0) return;
      lib.sgdMomentum(threads, p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov);
    },
  };
}

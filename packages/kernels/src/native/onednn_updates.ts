// Why: the optimiser updates read and write every parameter of the model. SGD momentum (11M
// values in ResNet-18) was ~9 ms a step on the wasm SIMD kernel of ../wasm/optimizer_updates.ts,
// one thread: with the convolutions on both cores it was one of the parts of a 2-thread step left
// on one. AdamW (11M in BERT-mini) was 36.7 ms of a 16-thread BERT-mini step and 15.5 ms of
// ViT-tiny's. `native/sgd_update.cc` and `native/adamw_update.cc`, built into the same optional
// addon, run the same updates on OpenMP threads with the same float operations in the same order:
// the same bits as the wasm kernels. Without the addon `loadOneDnnUpdates` returns undefined and
// the updates stay on wasm; an addon built before `adamW` gives SGD alone.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** The addon's update functions (native/sgd_update.cc, native/adamw_update.cc). */
interface UpdatesAddon extends OneDnnAddon {
  adamW?(
    threads: number,
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    keep: number,
    stepScale: number,
    vScale: number,
    epsilon: number,
  ): void;
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

/**
 * One AdamW step's coefficients as both kernels take them (each rounded to float32 on the way in):
 * m' = beta1 m + oneMinusBeta1 g; v' = beta2 v + oneMinusBeta2 g g;
 * p' = keep p - stepScale m' / (sqrt(vScale v') + epsilon), with keep = 1 - lr weightDecay,
 * stepScale = lr / (1 - beta1^t), vScale = 1 / (1 - beta2^t). See `adamWCoefficients` in
 * ../wasm/optimizer_updates.ts.
 */
export interface AdamWCoefficients {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  keep: number;
  stepScale: number;
  vScale: number;
  epsilon: number;
}

/** Optimiser updates on the addon's threads. */
export interface NativeUpdates {
  /** `oneDNN addon`, for the backend's log line. */
  readonly detail: string;
  /** The addon's OpenMP threads. */
  readonly threads: number;
  /**
   * PyTorch's AdamW, one step (see {@link AdamWCoefficients}), on all seven arrays of one length;
   * absent when the addon predates it.
   */
  adamW?(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    coefficients: AdamWCoefficients,
  ): void;
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
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose sgd wasm.',
    );
  }
  const { threads } = options;
  const adamW = lib.adamW?.bind(lib);
  return {
    detail: 'oneDNN addon',
    threads,
    ...(adamW === undefined
      ? {}
      : {
          adamW(p, g, m, v, pOut, mOut, vOut, c) {
            if (p.length === 0) return;
            const { beta1, oneMinusBeta1, beta2, oneMinusBeta2, keep, stepScale, vScale, epsilon } = c;
            adamW(
              threads,
              p,
              g,
              m,
              v,
              pOut,
              mOut,
              vOut,
              beta1,
              oneMinusBeta1,
              beta2,
              oneMinusBeta2,
              keep,
              stepScale,
              vScale,
              epsilon,
            );
          },
        }),
    sgdMomentum(p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov) {
      if (p.length === 0) return;
      lib.sgdMomentum(threads, p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov);
    },
  };
}

// Why: with the convolutions and products on oneDNN's threads, training-mode batch norm (the
// wasm SIMD kernels of ../wasm/batch_norm.ts) was the largest part of a ResNet-18 step left on one
// thread, and held the 2-thread step at 1.09-1.12x PyTorch's wall time. `native/batch_norm.cc`,
// built into the same optional addon, runs both kernels on OpenMP threads (the same bits at every
// thread count), with the ReLU that follows a batch norm optionally fused, and the residual
// block's relu(h + skip) and ReLU's gradient as one pass each, and a transformer's GELU and its
// gradient (the same bits as ../wasm/transformer_ops.ts). Without the addon
// `loadOneDnnBatchNorm` returns undefined and these stay on the wasm kernels.
import { MrlError } from '../errors.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** The addon's batch-norm functions (native/batch_norm.cc); dims [threads, rows, channels, relu]. */
interface BatchNormAddon extends OneDnnAddon {
  batchNorm(
    dims: Int32Array,
    epsilon: number,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    rstd: Float32Array,
  ): void;
  batchNormGrad(
    dims: Int32Array,
    dy: Float32Array,
    x: Float32Array,
    y: Float32Array,
    gamma: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  addRelu(threads: number, a: Float32Array, b: Float32Array, y: Float32Array): void;
  reluGrad(threads: number, dy: Float32Array, y: Float32Array, dx: Float32Array): void;
  add(threads: number, a: Float32Array, b: Float32Array, y: Float32Array): void;
  addRows(threads: number, a: Float32Array, b: Float32Array, y: Float32Array): void;
  gelu(threads: number, x: Float32Array, y: Float32Array, s: Float32Array): void;
  geluGrad(threads: number, x: Float32Array, s: Float32Array, dy: Float32Array, dx: Float32Array): void;
  // MrlLayerNorm, MrlLayerNormGrad and Softmax (native/layer_norm.cc); dims [threads, rows, cols].
  layerNorm(
    dims: Int32Array,
    epsilon: number,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
  ): void;
  layerNormGrad(
    dims: Int32Array,
    x: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    gamma: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  softmax(dims: Int32Array, x: Float32Array, y: Float32Array): void;
}

/**
 * Training-mode batch normalisation over the rows of `x` [rows, channels] (NHWC flattened), any
 * channel count: the kernels of ../wasm/batch_norm.ts, on the addon's threads.
 */
export interface NativeBatchNorm {
  /** `oneDNN addon`, for the backend's log line. */
  readonly detail: string;
  /** The OpenMP threads these kernels run on. */
  readonly threads: number;
  /**
   * y = gamma (x - mean) rstd + beta (then max(y, 0) with `relu`), with the batch mean, biased
   * variance and rstd = 1 / sqrt(variance + epsilon) per channel.
   */
  forward(
    rows: number,
    channels: number,
    epsilon: number,
    relu: boolean,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    rstd: Float32Array,
  ): void;
  /**
   * dx, dgamma and dbeta from dy and the forward's x, mean and rstd; with `relu`, dy is first
   * masked where the forward's output `y` is not positive (ReLU's gradient).
   */
  backward(
    rows: number,
    channels: number,
    relu: boolean,
    dy: Float32Array,
    x: Float32Array,
    y: Float32Array | undefined,
    gamma: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  /** y = max(a + b, 0), elementwise (a residual block's output). */
  addRelu(a: Float32Array, b: Float32Array, y: Float32Array): void;
  /** dx = dy where y > 0, else 0: ReLU's gradient from its output. */
  reluGrad(dy: Float32Array, y: Float32Array, dx: Float32Array): void;
  /** y = a + b, elementwise (the tape's sum of a residual block's two input gradients). */
  add(a: Float32Array, b: Float32Array, y: Float32Array): void;
  /** y = a + b with `b` [n] added to each row of `a` [rows, n] (a bias add); n divides a's length. */
  addRows(a: Float32Array, b: Float32Array, y: Float32Array): void;
  /**
   * GELU, tanh form, as the wasm kernel `MrlGelu` (../wasm/transformer_ops.ts) to the bit: y = x s
   * and s = sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3).
   */
  gelu(x: Float32Array, y: Float32Array, s: Float32Array): void;
  /** dx = dy gelu'(x) from x and the forward's s, as the wasm kernel `MrlGeluGrad` to the bit. */
  geluGrad(x: Float32Array, s: Float32Array, dy: Float32Array, dx: Float32Array): void;
  // Layer norm over the last axis, as the wasm kernels MrlLayerNorm and MrlLayerNormGrad
  // (../wasm/transformer_ops.ts) to the bit at every thread count (native/layer_norm.cc).
  /**
   * y = ((x - mean) rstd) gamma + beta over rows of `cols` values (a multiple of 4), with each
   * row's mean and rstd = 1 / sqrt(biased variance + epsilon) for the gradient.
   */
  layerNorm(
    rows: number,
    cols: number,
    epsilon: number,
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
  ): void;
  /** dx, and dgamma and dbeta summed over the rows, from dy and the forward's mean and rstd. */
  layerNormGrad(
    rows: number,
    cols: number,
    x: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    gamma: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  /** Softmax over rows of `cols` values, as the wasm backend's `Softmax` (XNNPACK's) to the bit. */
  softmax(rows: number, cols: number, x: Float32Array, y: Float32Array): void;
}

/** The addon, where it is built and has the batch-norm kernels. */
function loadBatchNormAddon(): BatchNormAddon | undefined {
  const lib = loadAddon() as Partial<BatchNormAddon> | undefined;
  return typeof lib?.batchNorm === 'function' &&
    typeof lib.addRelu === 'function' &&
    typeof lib.add === 'function' &&
    typeof lib.addRows === 'function' &&
    typeof lib.gelu === 'function' &&
    typeof lib.geluGrad === 'function' &&
    typeof lib.layerNormGrad === 'function' &&
    typeof lib.softmax === 'function'
    ? (lib as BatchNormAddon)
    : undefined;
}

/** Whether the addon is built with its batch-norm kernels and loads here. */
export function oneDnnBatchNormAvailable(): boolean {
  return loadBatchNormAddon() !== undefined;
}

const NO_VALUES = new Float32Array(0);

/**
 * Batch norm on the addon's `threads` OpenMP threads; `undefined` when the addon is not built,
 * does not load, predates these kernels or is turned off (`MRL_ONEDNN=off`); with `required`,
 * that is an `MrlError` instead.
 *
 * @example
 * const bn = loadOneDnnBatchNorm({ threads: 2 });
 * bn?.forward(16 * 32 * 32, 64, 1e-5, false, x, gamma, beta, y, mean, variance, rstd);
 */
export function loadOneDnnBatchNorm(options: { threads: number; required?: boolean }): NativeBatchNorm | undefined {
  const lib = loadBatchNormAddon();
  if (lib === undefined) {
    if (options.required !== true) return undefined;
    throw new MrlError(
      'backend-unavailable',
      "batch norm 'onednn' needs the oneDNN addon with its batch-norm kernels (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      'Install g++ and libdnnl-dev (apt-get install g++ libdnnl-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose batch norm wasm.',
    );
  }
  const { threads } = options;
  const dims = (rows: number, channels: number, relu: boolean): Int32Array =>
    Int32Array.of(threads, rows, channels, relu ? 1 : 0);
  return {
    detail: 'oneDNN addon',
    threads,
    forward(rows, channels, epsilon, relu, x, gamma, beta, y, mean, variance, rstd) {
      if (rows === 0) {
        // No rows: no statistics (NaN, as 0 / 0 in the wasm kernel), nothing to normalise.
        for (const a of [mean, variance, rstd]) a.fill(Number.NaN);
        return;
      }
      lib.batchNorm(dims(rows, channels, relu), epsilon, x, gamma, beta, y, mean, variance, rstd);
    },
    backward(rows, channels, relu, dy, x, y, gamma, mean, rstd, dx, dgamma, dbeta) {
      if (rows === 0) {
        dgamma.fill(0);
        dbeta.fill(0);
        return;
      }
      lib.batchNormGrad(dims(rows, channels, relu), dy, x, y ?? NO_VALUES, gamma, mean, rstd, dx, dgamma, dbeta);
    },
    addRelu(a, b, y) {
      if (y.length > 0) lib.addRelu(threads, a, b, y);
    },
    reluGrad(dy, y, dx) {
      if (dx.length > 0) lib.reluGrad(threads, dy, y, dx);
    },
    add(a, b, y) {
      if (y.length > 0) lib.add(threads, a, b, y);
    },
    addRows(a, b, y) {
      if (y.length > 0) lib.addRows(threads, a, b, y);
    },
    gelu(x, y, s) {
      if (y.length > 0) lib.gelu(threads, x, y, s);
    },
    geluGrad(x, s, dy, dx) {
      if (dx.length > 0) lib.geluGrad(threads, x, s, dy, dx);
    },
    layerNorm(rows, cols, epsilon, x, gamma, beta, y, mean, rstd) {
      if (rows > 0) lib.layerNorm(Int32Array.of(threads, rows, cols), epsilon, x, gamma, beta, y, mean, rstd);
    },
    layerNormGrad(rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta) {
      if (rows > 0) lib.layerNormGrad(Int32Array.of(threads, rows, cols), x, mean, rstd, gamma, dy, dx, dgamma, dbeta);
      else for (const a of [dgamma, dbeta]) a.fill(0);
    },
    softmax(rows, cols, x, y) {
      if (rows > 0 && cols > 0) lib.softmax(Int32Array.of(threads, rows, cols), x, y);
    },
  };
}

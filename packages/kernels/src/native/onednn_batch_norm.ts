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
  // Multiply, Sub, the Add broadcasts and the sums over any axes (native/binary.cc, ../wasm/native_binary.ts).
  broadcastBinary(threads: number, dims: Int32Array, a: Float32Array, b: Float32Array, y: Float32Array): void;
  sumLeading(threads: number, dims: Int32Array, x: Float32Array, y: Float32Array): void;
  sumLast(threads: number, dims: Int32Array, x: Float32Array, y: Float32Array): void;
  sumMiddle(threads: number, dims: Int32Array, x: Float32Array, y: Float32Array): void;
  sumAll(threads: number, dims: Int32Array, x: Float32Array, y: Float32Array): void;
  // Transpose, Slice, SplitV and Concat copies (native/layout.cc).
  transpose(threads: number, x: Float32Array, shape: Int32Array, perm: Int32Array, y: Float32Array): void;
  slice(
    threads: number,
    x: Float32Array,
    shape: Int32Array,
    begin: Int32Array,
    size: Int32Array,
    y: Float32Array,
  ): void;
  splitRows(threads: number, x: Float32Array, outer: number, parts: Float32Array[]): void;
  concatRows(threads: number, parts: Float32Array[], outer: number, y: Float32Array): void;
  // Fused multi-head attention (native/attention.cc; kernels MrlAttention, MrlAttentionGrad of
  // ../wasm/native_attention.ts): dims [threads, batch, tokens, heads, headWidth].
  attention(
    dims: Int32Array,
    scale: number,
    qkv: Float32Array,
    keyBias: Float32Array,
    mult: Float32Array,
    out: Float32Array,
    p: Float32Array,
  ): void;
  attentionGrad(
    dims: Int32Array,
    scale: number,
    dy: Float32Array,
    p: Float32Array,
    qkv: Float32Array,
    mult: Float32Array,
    dqkv: Float32Array,
  ): void;
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

  // Multiply, Sub, the Add broadcasts and the sums over any axes (native/binary.cc,
  // ../wasm/native_binary.ts). Each sum's order is fixed by its shape alone: the same bits at every
  // thread count and wherever the arrays sit.
  /**
   * y = a op b with a and y [outer, middle, inner] and b [outer, inner] (broadcast over the middle
   * axis; `sub-reversed` is b - a): each value one float32 operation, as the wasm kernels.
   */
  broadcastBinary(
    op: BinaryOp,
    outer: number,
    middle: number,
    inner: number,
    a: Float32Array,
    b: Float32Array,
    y: Float32Array,
  ): void;
  /** y [n] = the sum of the rows of x [rows, n]: the same bits at every thread count. */
  sumLeading(rows: number, n: number, x: Float32Array, y: Float32Array): void;
  /** y [rows] = the sum of each row of x [rows, n]: the same bits at every thread count. */
  sumLast(rows: number, n: number, x: Float32Array, y: Float32Array): void;
  /**
   * y [outer, inner] = x [outer, m, inner] summed over m, each outer slice to the bit as
   * {@link sumLeading} sums [m, inner]: the same bits at every thread count.
   */
  sumMiddle(outer: number, m: number, inner: number, x: Float32Array, y: Float32Array): void;
  /**
   * The sum of all values of x (blocks of 4,096 values in 16 float lanes each, the lanes and then
   * the blocks added in order in double): the same bits at every thread count.
   */
  sumAll(x: Float32Array): number;
  // Transpose, Slice, SplitV and Concat (native/layout.cc, ../wasm/native_layout.ts): float32
  // copies, the same bits as any copy.
  /** y = x [shape] transposed by `perm` (output axis k is input axis perm[k]); rank 8 at most. */
  transpose(x: Float32Array, shape: readonly number[], perm: readonly number[], y: Float32Array): void;
  /** y = x [shape] from `begin`, `size` values along each axis. */
  slice(
    x: Float32Array,
    shape: readonly number[],
    begin: readonly number[],
    size: readonly number[],
    y: Float32Array,
  ): void;
  /** x [outer, W] into parts [outer, w_k] (each w_k its length / outer, summing to W): SplitV. */
  splitRows(x: Float32Array, outer: number, parts: Float32Array[]): void;
  /** The parts [outer, w_k] side by side into y [outer, sum w_k]: Concat. */
  concatRows(parts: Float32Array[], outer: number, y: Float32Array): void;
  // Fused multi-head attention (kernels MrlAttention, MrlAttentionGrad: ../wasm/native_attention.ts).
  /**
   * Self-attention read in place from a qkv projection's output `qkv` [batch, tokens, 3 heads,
   * headWidth] (q, k, v: heads 0..H-1, H..2H-1, 2H..3H-1): `out` [batch, tokens, heads, headWidth]
   * = (P mult) v per (batch, head), P = softmax(q k^T scale + keyBias) [batch, heads, tokens,
   * tokens] written to `p`; `keyBias` [batch, tokens] (added to every query's scores: a padding
   * mask) and `mult` [batch, heads, tokens, tokens] (a dropout multiplier) are optional.
   */
  attention(
    batch: number,
    tokens: number,
    heads: number,
    headWidth: number,
    scale: number,
    qkv: Float32Array,
    keyBias: Float32Array | undefined,
    mult: Float32Array | undefined,
    out: Float32Array,
    p: Float32Array,
  ): void;
  /** `dqkv` [batch, tokens, 3 heads, headWidth] from `dy` (like `out`) and the forward's `p`, `qkv` and `mult`. */
  attentionGrad(
    batch: number,
    tokens: number,
    heads: number,
    headWidth: number,
    scale: number,
    dy: Float32Array,
    p: Float32Array,
    qkv: Float32Array,
    mult: Float32Array | undefined,
    dqkv: Float32Array,
  ): void;
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

/** The operations of {@link NativeBatchNorm.broadcastBinary}. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'sub-reversed';
const BINARY_OPS: Readonly<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, 'sub-reversed': 3 };

/** The addon, where it is built and has the batch-norm kernels. */
function loadBatchNormAddon(): BatchNormAddon | undefined {
  const lib = loadAddon() as Partial<BatchNormAddon> | undefined;
  return typeof lib?.batchNorm === 'function' &&
    typeof lib.addRelu === 'function' &&
    typeof lib.add === 'function' &&
    typeof lib.addRows === 'function' &&
    typeof lib.gelu === 'function' &&
    typeof lib.geluGrad === 'function' &&
    typeof lib.broadcastBinary === 'function' &&
    typeof lib.sumLeading === 'function' &&
    typeof lib.sumLast === 'function' &&
    typeof lib.sumMiddle === 'function' &&
    typeof lib.sumAll === 'function' &&
    typeof lib.transpose === 'function' &&
    typeof lib.concatRows === 'function' &&
    typeof lib.attention === 'function' &&
    typeof lib.attentionGrad === 'function' &&
    typeof lib.layerNorm === 'function' &&
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
 * Values per thread of the layout copies (Transpose, Slice, SplitV, Concat; none below twice
 * this). A copy costs ~0.2 ns a value on one thread, a third of GELU's; waking a sleeping OpenMP
 * thread costs tens of microseconds on an idle machine, and took 0.5-0.8 ms on the 2-core container
 * under other processes' load (the addon's Add as well), where BERT-mini's 262K-value head
 * transposes ran slower on 2 threads than on one (bench/speed.mjs --profile).
 */
export const LAYOUT_VALUES_PER_THREAD = 1 << 18;

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
      'Install g++, libdnnl-dev and librandom123-dev (apt-get install g++ libdnnl-dev librandom123-dev), run `pnpm --filter @mrl/kernels run build:native`, or choose batch norm wasm.',
    );
  }
  const { threads } = options;
  // The layout copies wake one thread per LAYOUT_VALUES_PER_THREAD values.
  const copyThreads = (values: number): number =>
    Math.max(1, Math.min(threads, Math.floor(values / LAYOUT_VALUES_PER_THREAD)));
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
    broadcastBinary(op, outer, middle, inner, a, b, y) {
      if (y.length > 0) lib.broadcastBinary(threads, Int32Array.of(BINARY_OPS[op], outer, middle, inner), a, b, y);
    },
    sumLeading(rows, n, x, y) {
      if (n === 0) return;
      if (rows === 0) y.fill(0);
      else lib.sumLeading(threads, Int32Array.of(rows, n), x, y);
    },
    sumLast(rows, n, x, y) {
      if (rows === 0) return;
      if (n === 0) y.fill(0);
      else lib.sumLast(threads, Int32Array.of(rows, n), x, y);
    },
    sumMiddle(outer, m, inner, x, y) {
      if (y.length === 0) return;
      if (m === 0) y.fill(0);
      else lib.sumMiddle(threads, Int32Array.of(outer, m, inner), x, y);
    },
    sumAll(x) {
      if (x.length === 0) return 0;
      const y = new Float32Array(1);
      lib.sumAll(threads, Int32Array.of(x.length), x, y);
      return y[0]!;
    },
    transpose(x, shape, perm, y) {
      lib.transpose(copyThreads(y.length), x, Int32Array.from(shape), Int32Array.from(perm), y);
    },
    slice(x, shape, begin, size, y) {
      const [s, b, n] = [shape, begin, size].map((v) => Int32Array.from(v)) as [Int32Array, Int32Array, Int32Array];
      lib.slice(copyThreads(y.length), x, s, b, n, y);
    },
    splitRows(x, outer, parts) {
      if (x.length > 0) lib.splitRows(copyThreads(x.length), x, outer, parts);
    },
    concatRows(parts, outer, y) {
      if (y.length > 0) lib.concatRows(copyThreads(y.length), parts, outer, y);
    },
    // Fused multi-head attention.
    attention(batch, tokens, heads, headWidth, scale, qkv, keyBias, mult, out, p) {
      const dims = Int32Array.of(threads, batch, tokens, heads, headWidth);
      if (out.length > 0) lib.attention(dims, scale, qkv, keyBias ?? NO_VALUES, mult ?? NO_VALUES, out, p);
    },
    attentionGrad(batch, tokens, heads, headWidth, scale, dy, p, qkv, mult, dqkv) {
      const dims = Int32Array.of(threads, batch, tokens, heads, headWidth);
      if (dqkv.length > 0) lib.attentionGrad(dims, scale, dy, p, qkv, mult ?? NO_VALUES, dqkv);
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

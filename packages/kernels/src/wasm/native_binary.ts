// Why: a transformer step's products and differences ran on one thread while its products of
// matrices used every core. In a 16-thread ViT-tiny step Multiply took 9.2 ms (a scalar times
// [48,65,65], same-shape, and the softmax gradient's [48,65,1] column), Sub 2.3 ms and the bias
// gradients' Sum over rows 12.8 ms (ONNX Runtime's ReduceSum, one thread); in BERT-mini's
// Multiply took 15.3 ms and the Adds of a scalar or an attention mask ([8,1,1,128] against
// [8,4,128,128]) 7.3 ms. From SIZE_THRESHOLD float32 values up, at 2 threads or more
// (register.ts), they run on the oneDNN addon's threads (native/binary.cc):
// - Multiply, Sub and those Adds as one pass of y[o, m, i] = a[o, m, i] op b[o, i] (same shape,
//   scalar, row, column and batched-row broadcasts, either operand the larger): one float32
//   operation per value, the same bits as the shipped kernels. `Add`'s same-shape and row cases
//   stay with native_add.ts, which this kernel wraps.
// - Sum (and Mean, divided here as native_sum.ts does) over any axes, at every thread count: over
//   the leading axes or the last axis as sumLeading and sumLast always have; any other axis set
//   as steps of [outer, m, inner] -> [outer, inner] ({@link sumSteps}: a middle axis, every axis,
//   or several axis groups one after another). Each in an order fixed by the shape alone, so the
//   same bits at every thread count and wherever the array sits in the wasm heap: ONNX Runtime's
//   ReduceSum (native_sum.ts, which ran the other axis sets before) rounds differently with the
//   array's address, which made a gradient-norm clip depend on the process's allocation history.
//   Not ONNX Runtime's bits: test/native_binary.test.ts bounds the error against a float64 sum.
// Other broadcasts, other dtypes, small tensors and (for the products) one thread keep the
// kernels they wrap.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, SumAttrs } from '@tensorflow/tfjs';

import type { BinaryOp, NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { elementCount, SIZE_THRESHOLD } from './native_sum.js';
import { heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * How `a op b` broadcasts, as [outer, middle, inner]: the larger operand (the output's shape)
 * read as [outer, middle, inner] and the smaller as [outer, inner], broadcast over the middle
 * axis. Same-shape operands are [1, 1, n]; a scalar [1, n, 1]; a row vector [1, rows, n]; a
 * column [rows, n, 1].
 */
export interface BroadcastPlan {
  readonly shape: number[];
  readonly outer: number;
  readonly middle: number;
  readonly inner: number;
  /** Whether `a` is the larger operand (the one with the output's shape). */
  readonly aLarger: boolean;
}

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** The plan for `a op b`, or undefined when neither operand has the output's size or the
 * smaller one's kept axes are not one block at each end (e.g. [n, 1] against [1, m]). */
export function broadcastPlan(aShape: readonly number[], bShape: readonly number[]): BroadcastPlan | undefined {
  let shape: number[];
  try {
    shape = tf.backend_util.assertAndGetBroadcastShape([...aShape], [...bShape]);
  } catch {
    return undefined; // incompatible: the shipped kernel reports it
  }
  const n = size(shape);
  const aLarger = size(aShape) === n;
  if (!aLarger && size(bShape) !== n) return undefined;
  const small = aLarger ? bShape : aShape;
  const padded = [...new Array<number>(shape.length - small.length).fill(1), ...small];
  let phase = 0; // 0: outer (kept), 1: middle (broadcast), 2: inner (kept)
  const dims = [1, 1, 1];
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k]!;
    if (d === 1) continue;
    const kept = padded[k] === d;
    if (kept) phase = phase === 0 ? 0 : 2;
    else if (phase === 2) return undefined;
    else phase = 1;
    dims[phase] = dims[phase]! * d;
  }
  const [outer, middle, inner] = dims as [number, number, number];
  if (middle === 1) return { shape, outer: 1, middle: 1, inner: n, aLarger };
  return { shape, outer, middle, inner, aLarger };
}

/** The kind of a plan that `Add` leaves to native_add.ts: the same shape, or a row vector. */
const nativeAddCase = (plan: BroadcastPlan): boolean => plan.middle === 1 || (plan.outer === 1 && plan.inner > 1);

/**
 * `Multiply`, `Sub` or `Add` (`op` `mul`, `sub`, `add`) for wasm: large float32 operands whose
 * broadcast has a {@link BroadcastPlan} on `native`, else `original` (for `Add`, the kernel of
 * native_add.ts, which keeps the same-shape and row cases).
 */
export function createNativeBinaryKernel(
  original: KernelConfig,
  native: NativeBatchNorm,
  op: 'mul' | 'sub' | 'add',
): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original.kernelFunc(args);
    if (Math.max(elementCount(a), elementCount(b)) < SIZE_THRESHOLD || elementCount(a) * elementCount(b) === 0) {
      return original.kernelFunc(args);
    }
    const plan = broadcastPlan(a.shape, b.shape);
    if (plan === undefined || (op === 'add' && nativeAddCase(plan))) return original.kernelFunc(args);
    const [large, small] = plan.aLarger ? [a, b] : [b, a];
    // The kernel computes large op small; a - b with b the larger is small - large.
    const kernelOp: BinaryOp = op === 'sub' && !plan.aLarger ? 'sub-reversed' : op;
    const out = backend.makeOutput(plan.shape, 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    native.broadcastBinary(
      kernelOp,
      plan.outer,
      plan.middle,
      plan.inner,
      heapF32(backend, large),
      heapF32(backend, small),
      heapF32(backend, out),
    );
    return out;
  });
}

/** One step of a sum over axes: x [outer, m, inner] -> [outer, inner]. */
export interface SumStep {
  readonly outer: number;
  readonly m: number;
  readonly inner: number;
}

/**
 * The steps that sum x [shape] over `axes` (distinct, in range): axes of size 1 dropped, adjacent
 * axes that are both reduced or both kept merged, then the innermost reduced group summed first,
 * the kept groups beside it merged, and so on. An empty list: nothing to sum (a copy).
 *
 * @example
 * sumSteps([8, 128, 256], [0, 2]); // [{ outer: 1024, m: 256, inner: 1 }, { outer: 1, m: 8, inner: 128 }]
 */
export function sumSteps(shape: readonly number[], axes: readonly number[]): SumStep[] {
  let groups: { size: number; reduced: boolean }[] = [];
  const merge = (list: typeof groups) => {
    const out: typeof groups = [];
    for (const g of list) {
      const last = out[out.length - 1];
      if (last !== undefined && last.reduced === g.reduced) out[out.length - 1] = { ...last, size: last.size * g.size };
      else out.push(g);
    }
    return out;
  };
  groups = merge(shape.flatMap((d, k) => (d === 1 ? [] : [{ size: d, reduced: axes.includes(k) }])));
  const steps: SumStep[] = [];
  for (;;) {
    const j = groups.findLastIndex((g) => g.reduced);
    if (j < 0) return steps;
    steps.push({
      outer: size(groups.slice(0, j).map((g) => g.size)),
      m: groups[j]!.size,
      inner: size(groups.slice(j + 1).map((g) => g.size)),
    });
    groups = merge([...groups.slice(0, j), ...groups.slice(j + 1)]);
  }
}

/**
 * y = x summed by `steps` ({@link sumSteps}) on `native`, each step into a fresh buffer and the
 * last into y: [1, m, 1] sumAll, [1, m, inner] sumLeading, [outer, m, 1] sumLast, else sumMiddle.
 */
export function sumBySteps(native: NativeBatchNorm, steps: readonly SumStep[], x: Float32Array, y: Float32Array): void {
  if (steps.length === 0) {
    y.set(x);
    return;
  }
  let from = x;
  steps.forEach(({ outer, m, inner }, k) => {
    const to = k === steps.length - 1 ? y : new Float32Array(outer * inner);
    if (outer === 1 && inner === 1) to[0] = native.sumAll(from);
    else if (outer === 1) native.sumLeading(m, inner, from, to);
    else if (inner === 1) native.sumLast(outer, m, from, to);
    else native.sumMiddle(outer, m, inner, from, to);
    from = to;
  });
}

/**
 * `Sum` (or, with `mean`, `Mean`) for wasm: large float32 reductions over any axes on `native`
 * (the leading axes or the last axis as sumLeading and sumLast, any other axis set by
 * {@link sumSteps}), else `original` (native_sum.ts's kernel: other dtypes, small tensors).
 */
export function createNativeRowSumKernel(original: KernelConfig, native: NativeBatchNorm, mean = false): KernelConfig {
  return replacing(original, (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SumAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype !== 'float32' || elementCount(x) < SIZE_THRESHOLD) return original.kernelFunc(args);
    const axes = [...new Set(tf.util.parseAxisParam(attrs.axis, x.shape))].sort((p, q) => p - q);
    const rank = x.shape.length;
    const leading = axes.length < rank && axes.every((axis, i) => axis === i);
    const last = rank >= 2 && axes.length === 1 && axes[0] === rank - 1;
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const shape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    const count = size(axes.map((axis) => x.shape[axis]!));
    const rows = leading ? count : elementCount(x) / count;
    const n = elementCount(x) / rows;
    const out = backend.makeOutput(shape, 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    const y = heapF32(backend, out);
    // The leading-axes and last-axis sums keep their calls (and so their bits) as before the other
    // axis sets came here (sumSteps would read e.g. [1, n] over axis 1 as a sum of all values).
    if (leading) native.sumLeading(rows, n, heapF32(backend, x), y);
    else if (last) native.sumLast(rows, n, heapF32(backend, x), y);
    else sumBySteps(native, sumSteps(x.shape, axes), heapF32(backend, x), y);
    if (mean) {
      for (let i = 0; i < y.length; i++) y[i] = y[i]! / count;
    }
    return out;
  });
}

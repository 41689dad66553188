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
// - Sum (and Mean, divided here as native_sum.ts does) over the leading axes or the last axis:
//   fixed row chunks summed in order, then the chunks in order, so the same bits at every thread
//   count (not ONNX Runtime's: its order differs; test/native_binary.test.ts bounds the error
//   against a float64 sum). Other axes stay on native_sum.ts's kernel, which this one wraps.
// Other broadcasts, other dtypes, small tensors and one thread keep the kernels they wrap.
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

/**
 * `Sum` (or, with `mean`, `Mean`) for wasm: large float32 reductions over the leading axes or the
 * last axis on `native`, else `original` (native_sum.ts's kernel).
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
    if (!leading && !last) return original.kernelFunc(args);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const shape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    const count = size(axes.map((axis) => x.shape[axis]!));
    const rows = leading ? count : elementCount(x) / count;
    const n = elementCount(x) / rows;
    const out = backend.makeOutput(shape, 'float32');
    // Views only after the allocation: a heap growth detaches earlier ones.
    const y = heapF32(backend, out);
    if (leading) native.sumLeading(rows, n, heapF32(backend, x), y);
    else native.sumLast(rows, n, heapF32(backend, x), y);
    if (mean) {
      for (let i = 0; i < y.length; i++) y[i] = y[i]! / count;
    }
    return out;
  });
}

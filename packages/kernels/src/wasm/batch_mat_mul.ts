// Why: the wasm BatchMatMul runs ~20x slower with transposeA/transposeB (every backward pass
// of a dense layer uses them) than without. Transposing the flagged operand explicitly with the
// wasm Transpose kernel and then running the plain product is far cheaper.
import * as tf from '@tensorflow/tfjs';
import type { BatchMatMulAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import { callKernel, dim, input, markOurs, replacing, swapLastTwo, view } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Wraps a matmul kernel (`BatchMatMul` or `_FusedMatMul`, both with inputs `a`, `b` and attrs
 * `transposeA`, `transposeB`) so that it only ever runs its untransposed fast path.
 */
export function createUntransposedMatMulKernel(original: KernelConfig, transpose: KernelFunc): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<BatchMatMulAttrs>;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    if ((!attrs.transposeA && !attrs.transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') {
      return original.kernelFunc(args);
    }
    const owned: TensorInfo[] = [];
    const materialize = (x: TensorInfo): TensorInfo => {
      const t = callKernel(transpose, { x }, backend, { perm: swapLastTwo(x.shape.length) });
      owned.push(t);
      return t;
    };
    try {
      return original.kernelFunc({
        inputs: { ...inputs, a: attrs.transposeA ? materialize(a) : a, b: attrs.transposeB ? materialize(b) : b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of owned) backend.disposeData(t.dataId);
    }
  };
  return replacing(original, kernelFunc);
}

/**
 * `BatchMatMul` for wasm: transposes explicitly, then runs the shipped plain product, which is
 * XNNPACK's fast GEMM only for a batch of one; for a batch of more (attention scores and
 * mixing, [B*H, T, dh] x [B*H, dh, T]) it runs a naive triple loop, ~10x slower. So:
 * - b shared by the whole batch (its batch is 1): a is viewed as one [batch*M, K] matrix and
 *   the product is a single GEMM;
 * - otherwise one GEMM per batch entry on copies of that entry's operands, written into the
 *   output. The copies are O(M*K + K*N) against the O(M*K*N) product.
 */
export function createBatchMatMulKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.BatchMatMul);
  const untransposed = createUntransposedMatMulKernel(original, get(tf.Transpose).kernelFunc);
  const plain = untransposed.kernelFunc;

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<BatchMatMulAttrs>;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return plain(args);
    if (dim(a.shape, attrs.transposeA ? -2 : -1) === 0) {
      // An empty reduction: the shipped kernel leaves the output unwritten.
      const batchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      const out = backend.makeOutput(
        [...batchShape, dim(a.shape, attrs.transposeA ? -1 : -2), dim(b.shape, attrs.transposeB ? -2 : -1)],
        'float32',
      );
      backend.typedArrayFromHeap(out).fill(0);
      return out;
    }
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const batch = Math.max(batchA, batchB);
    // Batch 1, or batch dims that only broadcast when kept apart: the shipped kernel decides.
    if (batch === 1 || (batchA !== batchB && batchA !== 1 && batchB !== 1)) return plain(args);
    const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));

    const owned: TensorInfo[] = [];
    const own = (t: TensorInfo): TensorInfo => {
      owned.push(t);
      return t;
    };
    const gemm = (x: TensorInfo, y: TensorInfo): TensorInfo =>
      own(callKernel(original.kernelFunc, { a: x, b: y }, backend, { ...attrs, transposeA: false, transposeB: false }));
    try {
      // Operands as [batch, M, K] and [batch, K, N]; a flagged one is transposed per entry in
      // the copy below (the shipped 3-D Transpose is slower than the products it feeds).
      const a3 = view(a, [batchA, dim(a.shape, -2), dim(a.shape, -1)]);
      const b3 = view(b, [batchB, dim(b.shape, -2), dim(b.shape, -1)]);
      const m = dim(a3.shape, attrs.transposeA ? 2 : 1);
      const k = dim(a3.shape, attrs.transposeA ? 1 : 2);
      const n = dim(b3.shape, attrs.transposeB ? 1 : 2);
      if (dim(b3.shape, attrs.transposeB ? 2 : 1) !== k) {
        throw new MrlError(
          'invalid-argument',
          `BatchMatMul: inner dims of [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ.`,
        );
      }
      const outShape = [...outBatchShape, m, n];
      /** Entries [from, to) of x as a new [to - from, rows, cols] tensor, transposed from [cols, rows] when asked. */
      const copy = (
        x: TensorInfo,
        from: number,
        to: number,
        rows: number,
        cols: number,
        transposed: boolean,
      ): TensorInfo => {
        const t = own(backend.makeOutput([to - from, rows, cols], 'float32'));
        const size = rows * cols;
        const src = backend.typedArrayFromHeap(x);
        const dst = backend.typedArrayFromHeap(t);
        if (!transposed) {
          dst.set(src.subarray(from * size, to * size));
          return t;
        }
        for (let e = from, o = 0; e < to; e++, o += size) {
          const base = e * size;
          for (let c = 0; c < cols; c++) {
            for (let r = 0, at = base + c * rows; r < rows; r++) dst[o + r * cols + c] = src[at + r]!;
          }
        }
        return t;
      };
      if (batchB === 1) {
        const left = attrs.transposeA ? copy(a3, 0, batchA, m, k, true) : a3;
        const right = attrs.transposeB ? copy(b3, 0, 1, k, n, true) : b3;
        const r = gemm(view(left, [1, batchA * m, k]), view(right, [1, k, n]));
        owned.splice(owned.indexOf(r), 1); // r is the output
        return view(r, outShape);
      }
      const out = backend.makeOutput(outShape, 'float32');
      const aShared = batchA === 1 ? (attrs.transposeA ? copy(a3, 0, 1, m, k, true) : a3) : null;
      const keep = owned.length;
      for (let i = 0; i < batch; i++) {
        const ai = aShared ?? copy(a3, i, i + 1, m, k, attrs.transposeA);
        const bi = copy(b3, i, i + 1, k, n, attrs.transposeB);
        const r = gemm(ai, bi);
        // Views only after the last allocation: a heap growth detaches earlier ones.
        backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(r), i * m * n);
        for (const t of owned.splice(keep)) backend.disposeData(t.dataId);
      }
      return out;
    } finally {
      for (const t of owned) backend.disposeData(t.dataId);
    }
  };
  return { ...untransposed, kernelFunc: markOurs(kernelFunc) };
}

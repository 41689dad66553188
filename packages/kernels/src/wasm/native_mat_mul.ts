// Why: with a native GEMM at hand (ONNX Runtime's MLAS, see ../native/onnx-native.ts), every
// product the wasm backend runs (dense layers, attention, the conv filter gradient's im2col
// GEMM) goes to it on views of the wasm heap: no copies, transposes folded into the GEMM, and a
// batch of products in one call.
import * as tf from '@tensorflow/tfjs';
import type { _FusedMatMulAttrs, BatchMatMulAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { callKernel, dim, heapF32, input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** `op(a) @ op(b)` into a new float32 output, numpy-broadcast over the batch axes. */
export function nativeMatMul(
  native: NativeKernels,
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo {
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new MrlError(
      'invalid-argument',
      `MatMul needs operands of rank >= 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}].`,
    );
  }
  const m = dim(a.shape, transposeA ? -1 : -2);
  const k = dim(a.shape, transposeA ? -2 : -1);
  const kb = dim(b.shape, transposeB ? -1 : -2);
  const n = dim(b.shape, transposeB ? -2 : -1);
  if (k !== kb) {
    throw new MrlError(
      'invalid-argument',
      `MatMul: inner dims of [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ (${k} vs ${kb}, transposeA ${transposeA}, transposeB ${transposeB}).`,
    );
  }
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const outShape = [...batch, m, n];
  const out = backend.makeOutput(outShape, 'float32');
  // Views only after the allocation: a heap growth detaches earlier ones.
  native.matMul(
    heapF32(backend, a),
    a.shape,
    heapF32(backend, b),
    b.shape,
    heapF32(backend, out),
    outShape,
    transposeA,
    transposeB,
  );
  return out;
}

/** `BatchMatMul` for wasm on a native GEMM; other dtypes go to the shipped kernel. */
export function createNativeBatchMatMulKernel(original: KernelConfig, native: NativeKernels): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<BatchMatMulAttrs>;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original.kernelFunc(args);
    return nativeMatMul(native, backend, a, b, attrs.transposeA, attrs.transposeB);
  };
  return replacing(original, kernelFunc);
}

/**
 * `_FusedMatMul` (what tfjs-layers' Dense calls) for wasm on a native GEMM: the product, then
 * the bias and the activation by the backend's own kernels (one pass each over the output).
 */
export function createNativeFusedMatMulKernel(
  get: (name: string) => KernelConfig,
  native: NativeKernels,
): KernelConfig {
  const original = get(tf._FusedMatMul);
  const add = get(tf.Add).kernelFunc;
  const unary: Record<string, KernelFunc> = {
    relu: get(tf.Relu).kernelFunc,
    relu6: get(tf.Relu6).kernelFunc,
    elu: get(tf.Elu).kernelFunc,
    sigmoid: get(tf.Sigmoid).kernelFunc,
  };
  const leakyRelu = get(tf.LeakyRelu).kernelFunc;
  const prelu = get(tf.Prelu).kernelFunc;

  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<_FusedMatMulAttrs>;
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    const activation = attrs.activation ?? 'linear';
    const known =
      activation === 'linear' ||
      activation === 'leakyrelu' ||
      activation === 'prelu' ||
      unary[activation] !== undefined;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !known) return original.kernelFunc(args);
    let y = nativeMatMul(native, backend, a, b, attrs.transposeA, attrs.transposeB);
    const then = (next: (x: TensorInfo) => TensorInfo): void => {
      const out = next(y);
      backend.disposeData(y.dataId);
      y = out;
    };
    const bias = inputs['bias'];
    if (bias !== undefined) then((x) => callKernel(add, { a: x, b: bias }, backend, {}));
    const fn = unary[activation];
    if (fn !== undefined) then((x) => callKernel(fn, { x }, backend, {}));
    else if (activation === 'leakyrelu')
      then((x) => callKernel(leakyRelu, { x }, backend, { alpha: attrs.leakyreluAlpha ?? 0.2 }));
    else if (activation === 'prelu')
      then((x) => callKernel(prelu, { x, alpha: input(inputs, 'preluActivationWeights') }, backend, {}));
    return y;
  };
  return replacing(original, kernelFunc);
}

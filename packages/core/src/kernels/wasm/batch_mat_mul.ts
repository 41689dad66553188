// Why: the wasm BatchMatMul runs ~20x slower with transposeA/transposeB (every backward pass
// of a dense layer uses them) than without. Transposing the flagged operand explicitly with the
// wasm Transpose kernel and then running the plain product is far cheaper.
import * as tf from '@tensorflow/tfjs';
import type { BatchMatMulAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { callKernel, input, markOurs, swapLastTwo, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Wraps a matmul kernel (`BatchMatMul` or `_FusedMatMul`, both with inputs `a`, `b` and attrs
 * `transposeA`, `transposeB`) so that it only ever runs its untransposed fast path.
 */
export function createUntransposedMatMulKernel(
  original: KernelConfig,
  transpose: KernelFunc,
): KernelConfig {
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
  return {
    kernelName: original.kernelName,
    backendName: WASM,
    kernelFunc: markOurs(kernelFunc),
    ...(original.setupFunc === undefined ? {} : { setupFunc: original.setupFunc }),
  };
}

/** `BatchMatMul` for wasm: transposes explicitly, then calls the shipped plain product. */
export function createBatchMatMulKernel(get: (name: string) => KernelConfig): KernelConfig {
  return createUntransposedMatMulKernel(get(tf.BatchMatMul), get(tf.Transpose).kernelFunc);
}

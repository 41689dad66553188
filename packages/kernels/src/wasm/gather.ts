// Why: a transformer's embedding lookups are `gather` along axis 0 (BERT-mini: 1,024 token ids
// into [30522, 256], the same ids into the [2, 256] segment table). tfjs-backend-wasm 4.22's
// GatherV2 copies value by value through a strided loop: 8 ms for 1,024 rows of 256 floats on
// this project's container (30 ns a value), 16 ms of BERT-mini's step at every thread count. A
// gather along axis 0 without batch dims is a copy of whole rows, one `TypedArray.set` per index:
// the same values (a copy rounds nothing). Other axes, batch dims and dtypes keep the shipped
// kernel, and so does an index out of range (which it refuses, naming the index).
import * as tf from '@tensorflow/tfjs';
import type { GatherV2Attrs, KernelConfig, KernelFunc } from '@tensorflow/tfjs';

import { input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** `GatherV2` for wasm: rows of `x` copied whole for axis 0, else the shipped kernel. */
export function createGatherKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.GatherV2);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<GatherV2Attrs>;
    const x = input(inputs, 'x');
    const indices = input(inputs, 'indices');
    if (
      x.shape.length === 0 ||
      (x.dtype !== 'float32' && x.dtype !== 'int32') ||
      indices.dtype !== 'int32' ||
      (attrs.batchDims ?? 0) !== 0 ||
      tf.util.parseAxisParam(attrs.axis, x.shape)[0] !== 0
    ) {
      return original.kernelFunc(args);
    }
    const rows = x.shape[0]!;
    const ids = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i]! >= 0 && ids[i]! < rows)) return original.kernelFunc(args);
    }
    const width = rows === 0 ? 0 : tf.util.sizeFromShape(x.shape) / rows;
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    if (ids.length === 0 || width === 0) return out;
    // Views only after the allocation: a heap growth detaches earlier ones.
    const from = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
    const to = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
    const at = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < at.length; i++) {
      const row = at[i]! * width;
      to.set(from.subarray(row, row + width), i * width);
    }
    return out;
  };
  return replacing(original, kernelFunc);
}

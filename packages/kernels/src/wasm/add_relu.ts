// Why: a residual block ends in relu(h + skip): TF.js runs Add and Relu forward (two passes) and
// ReLU's gradient as Step, Cast and Multiply (three), each on one thread. These two kernels do
// each direction in one pass: on the oneDNN addon's threads where it is built
// (../native/onednn_batch_norm.ts), else in the batch-norm SIMD module (simd/batch-norm.wat:
// `affine` with unit scales and its ReLU, `mask`). The last axis must be a multiple of 4 (SIMD);
// core's op keeps Add and Relu otherwise.
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { batchNormSimd } from './batch_norm.js';
import { heapOffset, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Kernel name of y = max(a + b, 0): inputs a, b (float32, one shape, last axis a multiple of 4); output y. */
export const ADD_RELU = 'MrlAddRelu';
/** Kernel name of ReLU's gradient from its output: inputs dy, y (float32, one shape); output dx = dy where y > 0. */
export const RELU_GRAD = 'MrlReluGrad';

/** The common shape of float32 inputs `names`, with a last axis that is a positive multiple of 4. */
function sameShape(kernel: string, infos: TensorInfo[], names: string[]): number[] {
  const shape = infos[0]!.shape;
  const c = shape[shape.length - 1] ?? 0;
  for (const [i, t] of infos.entries()) {
    if (t.dtype !== 'float32' || t.shape.join() !== shape.join() || c % 4 !== 0 || c === 0) {
      throw new MrlError(
        'invalid-argument',
        `${kernel}: '${names[i]}' is ${t.dtype} [${t.shape.join(', ')}]; every input must be float32 of one shape whose last axis is a positive multiple of 4 (${names[0]}: [${shape.join(', ')}]).`,
      );
    }
  }
  return [...shape];
}

const view = (backend: WasmKernelArgs['backend'], t: TensorInfo): Float32Array =>
  backend.typedArrayFromHeap(t) as Float32Array;

const addRelu = (args: Parameters<KernelFunc>[0], native: NativeBatchNorm | undefined): TensorInfo => {
  const { inputs, backend } = args as unknown as WasmKernelArgs;
  const a = input(inputs, 'a');
  const b = input(inputs, 'b');
  const shape = sameShape(ADD_RELU, [a, b], ['a', 'b']);
  const y = backend.makeOutput(shape, 'float32');
  if (native !== undefined) {
    native.addRelu(view(backend, a), view(backend, b), view(backend, y));
    return y;
  }
  const c = shape[shape.length - 1]!;
  const ones = backend.makeOutput([c], 'float32');
  const zeros = backend.makeOutput([c], 'float32');
  try {
    view(backend, ones).fill(1);
    view(backend, zeros).fill(0);
    const at = (t: TensorInfo): number => heapOffset(backend, t);
    const rows = shape.reduce((p, d) => p * d, 1) / c;
    // 1 a + 1 b + 0 is a + b to the bit; then max(., 0).
    batchNormSimd(backend).affine(at(a), at(b), rows, c, at(ones), at(ones), at(zeros), at(y), 1);
  } finally {
    backend.disposeData(ones.dataId);
    backend.disposeData(zeros.dataId);
  }
  return y;
};

const reluGrad = (args: Parameters<KernelFunc>[0], native: NativeBatchNorm | undefined): TensorInfo => {
  const { inputs, backend } = args as unknown as WasmKernelArgs;
  const dy = input(inputs, 'dy');
  const y = input(inputs, 'y');
  const shape = sameShape(RELU_GRAD, [dy, y], ['dy', 'y']);
  const dx = backend.makeOutput(shape, 'float32');
  if (native !== undefined) {
    native.reluGrad(view(backend, dy), view(backend, y), view(backend, dx));
    return dx;
  }
  const n = shape.reduce((p, d) => p * d, 1);
  batchNormSimd(backend).mask(heapOffset(backend, dy), heapOffset(backend, y), n, heapOffset(backend, dx));
  return dx;
};

/** relu(a + b): on `native.batchNorm` (the addon's threads) where given, else the SIMD loop. */
export function createAddReluKernel(native?: NativeKernels): KernelConfig {
  const bn = native?.batchNorm;
  return { kernelName: ADD_RELU, backendName: WASM, kernelFunc: markOurs((args) => addRelu(args, bn)) };
}

/** ReLU's gradient from its output: on `native.batchNorm` where given, else the SIMD loop. */
export function createReluGradKernel(native?: NativeKernels): KernelConfig {
  const bn = native?.batchNorm;
  return { kernelName: RELU_GRAD, backendName: WASM, kernelFunc: markOurs((args) => reluGrad(args, bn)) };
}

// Why: softmax cross-entropy over a large vocabulary (the MLM head: 154 masked tokens x 30,522
// classes, once per nesting dim) spent most of its time in the wasm backend's scalar `exp`
// (~7 ns per element) and in separate max / subtract / sum / divide passes. On native kernels
// it is one log-softmax pass (vectorised exp) plus one exp for the saved probabilities, and
// the gradient one scaled copy. `softmaxCrossEntropy` (../../losses.ts) uses these kernels
// where they are registered and tensor ops elsewhere.
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { dim, heapF32, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Inputs logits [N, C] float32, labels [N] int32; outputs [mean loss (scalar), softmax [N, C]]. */
export const SOFTMAX_CROSS_ENTROPY = 'MrlSoftmaxCrossEntropy';
/** Inputs probs [N, C], labels [N] int32, dy (scalar); output (probs - onehot(labels)) * dy / N. */
export const SOFTMAX_CROSS_ENTROPY_GRAD = 'MrlSoftmaxCrossEntropyGrad';

/** The mean of the per-row losses (NaN for no rows, as a mean over nothing). */
export function mean(rowLoss: Float32Array): number {
  let total = 0;
  for (const l of rowLoss) total += l;
  return rowLoss.length === 0 ? Number.NaN : total / rowLoss.length;
}

/** Throws when a label is outside [0, classes), naming its row and value. */
export function checkLabels(labels: Int32Array, classes: number): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!(label >= 0 && label < classes)) {
      throw new MrlError(
        'invalid-argument',
        `softmaxCrossEntropy: label ${label} of row ${i} is outside [0, ${classes}).`,
      );
    }
  }
}

function shapeOf(kernel: string, logits: TensorInfo, labels: TensorInfo): [number, number] {
  if (logits.shape.length !== 2 || logits.dtype !== 'float32') {
    throw new MrlError(
      'invalid-argument',
      `${kernel}: logits must be float32 [N, C], got ${logits.dtype} [${logits.shape.join(', ')}].`,
    );
  }
  const rows = dim(logits.shape, 0);
  if (labels.dtype !== 'int32' || labels.shape.length !== 1 || dim(labels.shape, 0) !== rows) {
    throw new MrlError(
      'invalid-argument',
      `${kernel}: labels must be int32 [${rows}], got ${labels.dtype} [${labels.shape.join(', ')}].`,
    );
  }
  return [rows, dim(logits.shape, 1)];
}

export function createSoftmaxCrossEntropyKernel(native: NativeKernels): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs<NamedAttrMap>;
    const logits = input(inputs, 'logits');
    const labels = input(inputs, 'labels');
    const [rows, classes] = shapeOf(SOFTMAX_CROSS_ENTROPY, logits, labels);
    const loss = backend.makeOutput([], 'float32');
    const probs = backend.makeOutput([rows, classes], 'float32');
    const labelIds = backend.typedArrayFromHeap(labels) as Int32Array;
    checkLabels(labelIds, classes);
    const rowLoss = new Float32Array(rows);
    native.softmaxCrossEntropy(heapF32(backend, logits), [rows, classes], labelIds, heapF32(backend, probs), rowLoss);
    heapF32(backend, loss)[0] = mean(rowLoss);
    return [loss, probs];
  };
  return { kernelName: SOFTMAX_CROSS_ENTROPY, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

export function createSoftmaxCrossEntropyGradKernel(native: NativeKernels): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs<NamedAttrMap>;
    const probs = input(inputs, 'probs');
    const labels = input(inputs, 'labels');
    const dy = input(inputs, 'dy');
    const [rows, classes] = shapeOf(SOFTMAX_CROSS_ENTROPY_GRAD, probs, labels);
    const out = backend.makeOutput([rows, classes], 'float32');
    const factor = heapF32(backend, dy)[0]! / rows;
    const grad = heapF32(backend, out);
    native.scale(heapF32(backend, probs), factor, grad);
    const labelIds = backend.typedArrayFromHeap(labels) as Int32Array;
    for (let i = 0; i < rows; i++) grad[i * classes + labelIds[i]!]! -= factor;
    return out;
  };
  return { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

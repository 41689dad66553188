// Why: softmax cross-entropy over a large vocabulary (the MLM head: 154 masked tokens x 30,522
// classes, once per nesting dim) spent most of its time in the wasm backend's scalar `exp`
// (~7 ns per element) and in separate max / subtract / sum / divide passes. On native kernels
// it is one log-softmax pass (vectorised exp) plus one exp for the saved probabilities, and
// the gradient one scaled copy. `softmaxCrossEntropy` (../../losses.ts) uses these kernels
// where they are registered and tensor ops elsewhere.
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { dim, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Inputs logits [N, C] float32, labels [N] int32; outputs [mean loss (scalar), softmax [N, C]]. */
export const SOFTMAX_CROSS_ENTROPY = 'MrlSoftmaxCrossEntropy';
/** Inputs probs [N, C], labels [N] int32, dy (scalar); output (probs - onehot(labels)) * dy / N. */
export const SOFTMAX_CROSS_ENTROPY_GRAD = 'MrlSoftmaxCrossEntropyGrad';

/** Throws when a label is outside [0, classes), naming its row and value. */
export function checkLabels(labels: Int32Array, classes: number): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!(label >= 0 && label < classes)) {
      throw new MrlError('invalid-argument', `softmaxCrossEntropy: label ${label} of row ${i} is outside [0, ${classes}).`);
    }
  }
}

function shapeOf(kernel: string, logits: TensorInfo, labels: TensorInfo): [number, number] {
  if (logits.shape.length !== 2 || logits.dtype !== 'float32') {
    throw new MrlError('invalid-argument', `${kernel}: logits must be float32 [N, C], got ${logits.dtype} [${logits.shape.join(', ')}].`);
  }
  const rows = dim(logits.shape, 0);
  if (labels.dtype !== 'int32' || labels.shape.length !== 1 || dim(labels.shape, 0) !== rows) {
    throw new MrlError('invalid-argument', `${kernel}: labels must be int32 [${rows}], got ${labels.dtype} [${labels.shape.join(', ')}].`);
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
    native.softmaxCrossEntropy(
      backend.typedArrayFromHeap(logits) as Float32Array,
      [rows, classes],
      labelIds,
      backend.typedArrayFromHeap(probs) as Float32Array,
      rowLoss,
    );
    let total = 0;
    for (const l of rowLoss) total += l;
    (backend.typedArrayFromHeap(loss) as Float32Array)[0] = rows === 0 ? Number.NaN : total / rows;
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
    const factor = (backend.typedArrayFromHeap(dy) as Float32Array)[0]! / rows;
    const grad = backend.typedArrayFromHeap(out) as Float32Array;
    native.scale(backend.typedArrayFromHeap(probs) as Float32Array, factor, grad);
    const labelIds = backend.typedArrayFromHeap(labels) as Int32Array;
    for (let i = 0; i < rows; i++) grad[i * classes + labelIds[i]!]! -= factor;
    return out;
  };
  return { kernelName: SOFTMAX_CROSS_ENTROPY_GRAD, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

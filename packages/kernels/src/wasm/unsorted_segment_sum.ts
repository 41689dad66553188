// Why: tfjs-backend-wasm 4.22 registers no UnsortedSegmentSum, and it is the gradient of
// `gather`, so no embedding table can train on wasm. A row-wise accumulation straight on the
// wasm heap is all it takes: one pass over the updates, no tensor of size numSegments x ids.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, UnsortedSegmentSumAttrs } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import { input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * `UnsortedSegmentSum` for wasm: `out[s, ...] = sum of x[i, ...] over i with segmentIds[i] = s`,
 * where `segmentIds` covers the leading dims of `x`. Ids outside [0, numSegments) are dropped,
 * as TensorFlow and the tfjs cpu backend do.
 */
export function createUnsortedSegmentSumKernel(): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<UnsortedSegmentSumAttrs>;
    const x = input(inputs, 'x');
    const segmentIds = input(inputs, 'segmentIds');
    const { numSegments } = attrs;
    const idRank = segmentIds.shape.length;
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || segmentIds.dtype !== 'int32') {
      throw new MrlError(
        'unsupported',
        `UnsortedSegmentSum on wasm: got x ${x.dtype}, segmentIds ${segmentIds.dtype}.`,
      );
    }
    if (segmentIds.shape.some((d, i) => d !== x.shape[i])) {
      throw new MrlError(
        'invalid-argument',
        `UnsortedSegmentSum: segmentIds shape [${segmentIds.shape.join(', ')}] is not a prefix of x shape [${x.shape.join(', ')}].`,
      );
    }
    const rowShape = x.shape.slice(idRank);
    const row = tf.util.sizeFromShape(rowShape);
    const count = tf.util.sizeFromShape(segmentIds.shape);

    const out = backend.makeOutput([numSegments, ...rowShape], x.dtype);
    const values = backend.typedArrayFromHeap(x);
    const ids = backend.typedArrayFromHeap(segmentIds);
    const sums = backend.typedArrayFromHeap(out);
    sums.fill(0);
    for (let i = 0; i < count; i++) {
      const s = ids[i]!;
      if (s < 0 || s >= numSegments) continue;
      const to = s * row;
      const from = i * row;
      for (let k = 0; k < row; k++) sums[to + k]! += values[from + k]!;
    }
    return out;
  };
  return { kernelName: tf.UnsortedSegmentSum, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

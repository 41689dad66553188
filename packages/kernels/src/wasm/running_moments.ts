// Why: a training-mode batch norm updates its running mean and variance from the batch moments
// with seven small tensor ops (a reshape, four products, two sums), each a kernel dispatch on the
// main thread: 140 a ResNet-18 step, a few ms of its single-threaded part. Here the update is
// one kernel, a loop over the C channels in float32 arithmetic (Math.fround after each operation,
// with the momentum, 1 - momentum and the variance's correction rounded to float32 as the tensor
// ops' scalars are): the same bits as the tensor ops.
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import { input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Kernel name of the running-moment update: inputs runningMean, runningVar, mean, variance (C
 * values each, any shape); attrs `momentum` (the new batch's weight) and `correction` (the
 * variance's factor, n / (n - 1)); outputs [runningMean', runningVar'] shaped as the running ones:
 * runningMean' = runningMean (1 - momentum) + mean momentum, runningVar' likewise with variance
 * correction.
 */
export const RUNNING_MOMENTS = 'MrlRunningMoments';

export interface RunningMomentsAttrs {
  momentum: number;
  correction: number;
}

const f = Math.fround;

const update = (args: Parameters<KernelFunc>[0]): TensorInfo[] => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<RunningMomentsAttrs & NamedAttrMap>;
  const names = ['runningMean', 'runningVar', 'mean', 'variance'] as const;
  const infos = names.map((n) => input(inputs, n));
  const c = infos[0]!.shape.reduce((a, b) => a * b, 1);
  for (const [i, t] of infos.entries()) {
    if (t.dtype !== 'float32' || t.shape.reduce((a, b) => a * b, 1) !== c) {
      throw new MrlError(
        'invalid-argument',
        `${RUNNING_MOMENTS}: '${names[i]}' is ${t.dtype} [${t.shape.join(', ')}], expected float32 with ${c} values like 'runningMean'.`,
      );
    }
  }
  // Outputs first: an allocation may grow the wasm memory, which detaches earlier views.
  const outs = [infos[0]!, infos[1]!].map((t) => backend.makeOutput([...t.shape], 'float32'));
  const [rm, rv, mean, variance] = infos.map((t) => backend.typedArrayFromHeap(t) as Float32Array) as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const [newMean, newVar] = outs.map((t) => backend.typedArrayFromHeap(t) as Float32Array) as [
    Float32Array,
    Float32Array,
  ];
  const m = f(attrs.momentum);
  const keep = f(1 - attrs.momentum);
  const correction = f(attrs.correction);
  for (let i = 0; i < c; i++) {
    newMean[i] = f(f(rm[i]! * keep) + f(mean[i]! * m));
    newVar[i] = f(f(rv[i]! * keep) + f(f(variance[i]! * correction) * m));
  }
  return outs;
};

export function createRunningMomentsKernel(): KernelConfig {
  return { kernelName: RUNNING_MOMENTS, backendName: WASM, kernelFunc: markOurs((args) => update(args)) };
}

// Why: training-mode batch normalisation in tensor ops is about 20 kernels per layer (moments,
// normalise, scale and shift forward; the closed-form gradient's products, means and sums
// backward), each a pass over the activation with a broadcast over channels and a dispatch:
// ~100 ms of CPU time in a ResNet-18 step at batch 16, more than its stride-2 convolutions. Here
// it is two passes over x forward (per-channel sums, then one affine pass) and two over (dy, x)
// backward (two per-channel sums, then dx = A dy + B x + D per channel), one SIMD loop each
// (simd/batch-norm.wat), on the wasm backend's own heap. The per-channel algebra (C values) is
// JavaScript. Channels must be a multiple of 4; core's op keeps the tensor-op form otherwise.
// Given native kernels with the oneDNN addon's batch norm (../native/onednn_batch_norm.ts), both
// kernels run there instead, on the addon's threads, on the same heap arrays. With `relu` the
// ReLU that follows is fused: its forward into the affine pass, its gradient (dy where the output
// is positive) into the backward's passes (on wasm, one more SIMD pass before them).
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import { WASM_BASE64 } from './simd/batch-norm.wasm.js';
import { heapOffset, input, markOurs, simdModule, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Kernel name of training-mode batch normalisation over every axis but the last: inputs x
 * [..., C], gamma [C], beta [C]; attrs `epsilon`, `relu` (optional: y = max(y, 0)); outputs [y,
 * mean [C], variance [C] (biased), rstd [C] = 1 / sqrt(variance + epsilon)].
 */
export const BATCH_NORM_TRAINING = 'MrlBatchNormTraining';
/**
 * Kernel name of its gradient: inputs dy, x, gamma, mean, rstd (the forward's), and with attr
 * `relu` the forward's output y (ReLU's gradient passes dy where y > 0); outputs [dx, dgamma
 * [C], dbeta [C]].
 */
export const BATCH_NORM_TRAINING_GRAD = 'MrlBatchNormTrainingGrad';

export interface BatchNormTrainingAttrs {
  epsilon: number;
  /** Fuse the ReLU that follows (forward: max(y, 0); gradient: needs the forward's y). */
  relu?: boolean;
}

interface BatchNormExports {
  sums(a: number, b: number, m: number, rows: number, c: number, block: number, out: number, mode: number): void;
  affine(
    a: number,
    b: number,
    rows: number,
    c: number,
    pa: number,
    pb: number,
    pd: number,
    out: number,
    relu: number,
  ): void;
  mask(dy: number, y: number, n: number, out: number): void;
}

/** The SIMD module instantiated on a backend's heap, once per backend (also for ./add_relu.ts). */
const simdFor = simdModule<BatchNormExports>(WASM_BASE64, 'batch-norm kernels');
export const batchNormSimd = simdFor;

/** Channels and rows of `x`, after checking dtypes and the per-channel inputs' sizes. */
function layout(kernel: string, x: TensorInfo, perChannel: Record<string, TensorInfo>): [number, number] {
  const c = x.shape[x.shape.length - 1] ?? 0;
  const size = x.shape.reduce((a, b) => a * b, 1);
  if (x.dtype !== 'float32' || c % 4 !== 0 || c === 0) {
    throw new MrlError(
      'invalid-argument',
      `${kernel}: x must be float32 with a last axis that is a positive multiple of 4, got ${x.dtype} [${x.shape.join(', ')}].`,
    );
  }
  for (const [name, t] of Object.entries(perChannel)) {
    if (t.dtype !== 'float32' || t.shape.reduce((a, b) => a * b, 1) !== c) {
      throw new MrlError(
        'invalid-argument',
        `${kernel}: '${name}' must be float32 with ${c} values (x's channels), got ${t.dtype} [${t.shape.join(', ')}].`,
      );
    }
  }
  return [c, size / c];
}

const forward = (args: Parameters<KernelFunc>[0], native: NativeBatchNorm | undefined): TensorInfo[] => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<BatchNormTrainingAttrs & NamedAttrMap>;
  const x = input(inputs, 'x');
  const gamma = input(inputs, 'gamma');
  const beta = input(inputs, 'beta');
  const [c, rows] = layout(BATCH_NORM_TRAINING, x, { gamma, beta });
  const y = backend.makeOutput([...x.shape], 'float32');
  const [mean, variance, rstd] = [0, 1, 2].map(() => backend.makeOutput([c], 'float32')) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  if (native !== undefined) {
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    native.forward(
      rows,
      c,
      attrs.epsilon,
      attrs.relu === true,
      ...([x, gamma, beta, y, mean, variance, rstd].map(view) as Seven),
    );
    return [y, mean, variance, rstd];
  }
  const temps = [0, 1, 2, 3].map(() => backend.makeOutput([c], 'float32')) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const [block, zero, scale, shift] = temps;
  try {
    const simd = simdFor(backend);
    const at = (t: TensorInfo): number => heapOffset(backend, t);
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    view(zero).fill(0);
    simd.sums(at(x), at(x), at(zero), rows, c, at(block), at(mean), 0);
    const m = view(mean);
    for (let i = 0; i < c; i++) m[i] = m[i]! / rows;
    simd.sums(at(x), at(x), at(mean), rows, c, at(block), at(variance), 2);
    const [v, r, g, b, sc, sh] = [variance, rstd, gamma, beta, scale, shift].map(view) as Float32Array[];
    for (let i = 0; i < c; i++) {
      v![i] = v![i]! / rows;
      r![i] = 1 / Math.sqrt(v![i]! + attrs.epsilon);
      sc![i] = g![i]! * r![i]!;
      sh![i] = b![i]! - m[i]! * sc![i]!;
    }
    simd.affine(at(x), at(x), rows, c, at(scale), at(zero), at(shift), at(y), attrs.relu === true ? 1 : 0);
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
  return [y, mean, variance, rstd];
};

type Seven = [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];

const gradient = (args: Parameters<KernelFunc>[0], native: NativeBatchNorm | undefined): TensorInfo[] => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<{ relu?: boolean } & NamedAttrMap>;
  const relu = attrs.relu === true;
  const dy = input(inputs, 'dy');
  const x = input(inputs, 'x');
  const gamma = input(inputs, 'gamma');
  const mean = input(inputs, 'mean');
  const rstd = input(inputs, 'rstd');
  const [c, rows] = layout(BATCH_NORM_TRAINING_GRAD, x, { gamma, mean, rstd });
  if (dy.dtype !== 'float32' || dy.shape.join() !== x.shape.join()) {
    throw new MrlError(
      'invalid-argument',
      `${BATCH_NORM_TRAINING_GRAD}: dy is ${dy.dtype} [${dy.shape.join(', ')}], expected float32 like x [${x.shape.join(', ')}].`,
    );
  }
  const y = relu ? inputs['y'] : undefined;
  if (relu && (y === undefined || y.dtype !== 'float32' || y.shape.join() !== x.shape.join())) {
    throw new MrlError(
      'invalid-argument',
      `${BATCH_NORM_TRAINING_GRAD}: with relu, input 'y' (the forward's output) must be float32 like x [${x.shape.join(', ')}], got ${y === undefined ? 'none' : `${y.dtype} [${y.shape.join(', ')}]`}.`,
      "Pass the forward kernel's first output as 'y', or leave relu off.",
    );
  }
  const dx = backend.makeOutput([...x.shape], 'float32');
  const dgamma = backend.makeOutput([c], 'float32');
  const dbeta = backend.makeOutput([c], 'float32');
  if (native !== undefined) {
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    const [vdy, vx, vg, vm, vr, vdx, vdg, vdb] = [dy, x, gamma, mean, rstd, dx, dgamma, dbeta].map(view) as [
      ...Seven,
      Float32Array,
    ];
    native.backward(rows, c, relu, vdy, vx, y === undefined ? undefined : view(y), vg, vm, vr, vdx, vdg, vdb);
    return [dx, dgamma, dbeta];
  }
  const temps = [0, 1, 2, 3, 4].map(() => backend.makeOutput([c], 'float32')) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const [block, zero, pa, pb, pd] = temps;
  // With relu, the masked dy in a temporary; the passes below read it in dy's place.
  const masked = y === undefined ? undefined : backend.makeOutput([...x.shape], 'float32');
  try {
    const simd = simdFor(backend);
    const at = (t: TensorInfo): number => heapOffset(backend, t);
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    if (y !== undefined && masked !== undefined) simd.mask(at(dy), at(y), rows * c, at(masked));
    const g0 = masked ?? dy;
    view(zero).fill(0);
    simd.sums(at(g0), at(g0), at(zero), rows, c, at(block), at(dbeta), 0); // sum dy
    simd.sums(at(g0), at(x), at(mean), rows, c, at(block), at(dgamma), 1); // sum dy (x - mean)
    const [g, m, r, dg, db, a, b, d] = [gamma, mean, rstd, dgamma, dbeta, pa, pb, pd].map(view) as Float32Array[];
    // dx = r g (dy - sum(dy) / P - xhat sum(dy xhat) / P), xhat = (x - m) r, as A dy + B x + D.
    for (let i = 0; i < c; i++) {
      const gr = g![i]! * r![i]!;
      a![i] = gr;
      b![i] = (-gr * r![i]! * r![i]! * dg![i]!) / rows;
      d![i] = -b![i]! * m![i]! - (gr * db![i]!) / rows;
      dg![i] = dg![i]! * r![i]!; // sum(dy xhat)
    }
    simd.affine(at(g0), at(x), rows, c, at(pa), at(pb), at(pd), at(dx), 0);
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
    if (masked !== undefined) backend.disposeData(masked.dataId);
  }
  return [dx, dgamma, dbeta];
};

/** The forward kernel: on `native.batchNorm` where given, else the SIMD loops. */
export function createBatchNormTrainingKernel(native?: NativeKernels): KernelConfig {
  const bn = native?.batchNorm;
  return { kernelName: BATCH_NORM_TRAINING, backendName: WASM, kernelFunc: markOurs((args) => forward(args, bn)) };
}

/** The gradient kernel: on `native.batchNorm` where given, else the SIMD loops. */
export function createBatchNormTrainingGradKernel(native?: NativeKernels): KernelConfig {
  const bn = native?.batchNorm;
  return {
    kernelName: BATCH_NORM_TRAINING_GRAD,
    backendName: WASM,
    kernelFunc: markOurs((args) => gradient(args, bn)),
  };
}

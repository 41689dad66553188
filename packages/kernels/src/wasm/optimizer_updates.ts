// Why: an optimiser step written in tensor ops makes 13-15 passes over every parameter (each
// op reads and writes whole tensors, and costs a dispatch); AdamW on BERT-mini's 11M
// parameters took ~80 ms a step that way. One SIMD loop (simd/optimizer-updates.wat) reads each
// input once and writes each output once, on the wasm backend's own heap. A plain JavaScript
// loop was measured too: no faster than the tensor ops (it is scalar, ~9 ns per element).
// The update rules are those of ../../optim (PyTorch's). Given native kernels with the oneDNN
// addon's updates (../native/onednn_updates.ts), SGD runs there, on the addon's threads, to the
// same bits; so does AdamW from ADAMW_NATIVE_VALUES values up at 2 threads or more (one thread
// keeps this kernel, and its bits; small parameters too, where waking the threads costs more than
// it saves).
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import type { NativeKernels } from '../native/onnxruntime.js';
import type { AdamWCoefficients, NativeUpdates } from '../native/onednn_updates.js';
import { WASM_BASE64 } from './simd/optimizer-updates.wasm.js';
import { heapOffset, input, markOurs, simdModule, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** Kernel name of one AdamW update: inputs param, grad, m, v; outputs [param, m, v]. */
export const ADAMW_UPDATE = 'MrlAdamWUpdate';
/**
 * The smallest parameter (in values) whose AdamW update runs on the addon, at 2 threads or more.
 * Measured with bench/adamw-update.mjs.
 */
export const ADAMW_NATIVE_VALUES = 16384;

/** Kernel name of one SGD-momentum update: inputs param, grad, buf; outputs [param, buf]. */
export const SGD_UPDATE = 'MrlSgdMomentumUpdate';

export interface AdamWUpdateAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Bias corrections 1 - beta^t of this step. */
  correction1: number;
  correction2: number;
}

export interface SgdUpdateAttrs {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
}

interface UpdateExports {
  adamw(...args: number[]): void;
  sgd_momentum(...args: number[]): void;
}

/** The SIMD module instantiated on a backend's heap, once per backend. */
const updatesFor = simdModule<UpdateExports>(WASM_BASE64, 'optimiser kernels');

function float32Inputs(kernel: string, inputs: WasmKernelArgs['inputs'], names: readonly string[]): TensorInfo[] {
  const infos = names.map((n) => input(inputs, n));
  const size = infos[0]!.shape.reduce((a, b) => a * b, 1);
  for (const [i, t] of infos.entries()) {
    if (t.dtype !== 'float32')
      throw new MrlError('invalid-argument', `${kernel}: input '${names[i]}' is ${t.dtype}, expected float32.`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== size) {
      throw new MrlError(
        'invalid-argument',
        `${kernel}: input '${names[i]}' has shape [${t.shape.join(', ')}], expected ${size} values like '${names[0]}'.`,
      );
    }
  }
  return infos;
}

/** The coefficients both AdamW kernels take, computed once here so that they round alike. */
export function adamWCoefficients(attrs: AdamWUpdateAttrs): AdamWCoefficients {
  const { lr, beta1, beta2, epsilon, weightDecay, correction1, correction2 } = attrs;
  return {
    beta1,
    oneMinusBeta1: 1 - beta1,
    beta2,
    oneMinusBeta2: 1 - beta2,
    keep: 1 - lr * weightDecay,
    stepScale: lr / correction1,
    vScale: 1 / correction2,
    epsilon,
  };
}

const adamW = (args: Parameters<KernelFunc>[0], native: NativeUpdates | undefined): TensorInfo[] => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<AdamWUpdateAttrs & NamedAttrMap>;
  const [param, grad, m, v] = float32Inputs(ADAMW_UPDATE, inputs, ['param', 'grad', 'm', 'v']) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const outs = [param, m, v].map((t) => backend.makeOutput([...t.shape], 'float32'));
  const n = param.shape.reduce((a, b) => a * b, 1);
  const c = adamWCoefficients(attrs);
  if (native?.adamW !== undefined && native.threads >= 2 && n >= ADAMW_NATIVE_VALUES) {
    // Views only after the allocations: a heap growth detaches earlier ones.
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    const [p, g, mIn, vIn, pOut, mOut, vOut] = [param, grad, m, v, ...outs].map(view) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    native.adamW(p, g, mIn, vIn, pOut, mOut, vOut, c);
    return outs;
  }
  const at = (t: TensorInfo): number => heapOffset(backend, t);
  updatesFor(backend).adamw(
    at(param),
    at(grad),
    at(m),
    at(v),
    at(outs[0]!),
    at(outs[1]!),
    at(outs[2]!),
    n,
    c.beta1,
    c.oneMinusBeta1,
    c.beta2,
    c.oneMinusBeta2,
    c.keep,
    c.stepScale,
    c.vScale,
    c.epsilon,
  );
  return outs;
};

const sgdMomentum = (args: Parameters<KernelFunc>[0], native: NativeUpdates | undefined): TensorInfo[] => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<SgdUpdateAttrs & NamedAttrMap>;
  const [param, grad, buf] = float32Inputs(SGD_UPDATE, inputs, ['param', 'grad', 'buf']) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const outs = [param, buf].map((t) => backend.makeOutput([...t.shape], 'float32'));
  const n = param.shape.reduce((a, b) => a * b, 1);
  if (native !== undefined) {
    const view = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t) as Float32Array;
    const [p, g, b, pOut, bOut] = [param, grad, buf, outs[0]!, outs[1]!].map(view) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    native.sgdMomentum(p, g, b, pOut, bOut, attrs.lr, attrs.momentum, attrs.weightDecay, attrs.nesterov);
    return outs;
  }
  const at = (t: TensorInfo): number => heapOffset(backend, t);
  updatesFor(backend).sgd_momentum(
    at(param),
    at(grad),
    at(buf),
    at(outs[0]!),
    at(outs[1]!),
    n,
    attrs.lr,
    attrs.momentum,
    attrs.weightDecay,
    attrs.nesterov ? 1 : 0,
  );
  return outs;
};

/**
 * The AdamW kernel: on `native.updates` (the addon's threads) at 2 threads or more for parameters
 * of ADAMW_NATIVE_VALUES values or more, else the SIMD loop. The same bits either way.
 */
export function createAdamWUpdateKernel(native?: NativeKernels): KernelConfig {
  const updates = native?.updates;
  return { kernelName: ADAMW_UPDATE, backendName: WASM, kernelFunc: markOurs((args) => adamW(args, updates)) };
}

/** The SGD-momentum kernel: on `native.updates` (the addon's threads) where given, else the SIMD loop. */
export function createSgdUpdateKernel(native?: NativeKernels): KernelConfig {
  const updates = native?.updates;
  return { kernelName: SGD_UPDATE, backendName: WASM, kernelFunc: markOurs((args) => sgdMomentum(args, updates)) };
}

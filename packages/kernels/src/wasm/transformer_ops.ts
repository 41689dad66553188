// Why: a transformer block's GELU and layer norms, written in tensor ops, are about 70 kernels
// per block and training step, each a pass over the activations and a dispatch. Here the layer
// norm is one kernel each way (two passes over a row for its statistics, one for the output) and
// GELU three passes forward (2u, the backend's own sigmoid, x s) and one backward, on the wasm
// heap in SIMD (simd/transformer-ops.wat). The op-level
// wrappers with their gradients are core's `gelu` and `layerNorm` (packages/core/src/ops).
import { Sigmoid } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';
import { WASM_BASE64 } from './simd/transformer-ops.wasm.js';
import { callKernel, heapOffset, input, markOurs, simdModule, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * GELU, tanh form (`x sigmoid(2u)`, u = sqrt(2/pi)(x + 0.044715 x^3)): input x; outputs y and
 * s = sigmoid(2u), which the gradient needs.
 */
export const GELU = 'MrlGelu';
/** GELU's gradient: inputs x, s (from {@link GELU}), dy; output dx = dy gelu'(x). */
export const GELU_GRAD = 'MrlGeluGrad';
/**
 * Layer norm over the last axis: inputs x [..., C], gamma [C], beta [C]; attrs `epsilon`;
 * outputs y [..., C], mean and rstd (1 / sqrt(var + eps)) [rows] for the gradient. C must be a
 * multiple of 4 ({@link layerNormFits}).
 */
export const LAYER_NORM = 'MrlLayerNorm';
/** Layer norm gradient: inputs x, mean, rstd, gamma, dy; outputs dx, dgamma, dbeta. */
export const LAYER_NORM_GRAD = 'MrlLayerNormGrad';

/** Whether the layer norm kernel takes an input of this shape (its SIMD rows are 4 floats wide). */
export function layerNormFits(shape: readonly number[]): boolean {
  const c = shape[shape.length - 1];
  return c !== undefined && c > 0 && c % 4 === 0;
}

interface TransformerExports {
  gelu_arg(x: number, z: number, n: number): void;
  mul(x: number, s: number, y: number, n: number): void;
  gelu_grad(x: number, s: number, dy: number, dx: number, n: number): void;
  layer_norm(...args: number[]): void;
  layer_norm_grad(...args: number[]): void;
}

/** The SIMD module instantiated on a backend's heap, once per backend. */
const opsFor = simdModule<TransformerExports>(WASM_BASE64, 'GELU and layer norm kernels');

const sizeOf = (t: TensorInfo): number => t.shape.reduce((a, b) => a * b, 1);

function float32(kernel: string, name: string, t: TensorInfo, size?: number): TensorInfo {
  if (t.dtype !== 'float32') {
    throw new MrlError('invalid-argument', `${kernel}: input '${name}' is ${t.dtype}, expected float32.`);
  }
  if (size !== undefined && sizeOf(t) !== size) {
    throw new MrlError(
      'invalid-argument',
      `${kernel}: input '${name}' has shape [${t.shape.join(', ')}], expected ${size} values.`,
    );
  }
  return t;
}

/** 2u in our SIMD loop, sigmoid by the backend's own kernel, then x s. */
function gelu(sigmoid: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const x = float32(GELU, 'x', input(inputs, 'x'));
    const n = sizeOf(x);
    const ops = opsFor(backend);
    const z = backend.makeOutput([...x.shape], 'float32');
    ops.gelu_arg(heapOffset(backend, x), heapOffset(backend, z), n);
    const s = callKernel(sigmoid, { x: z }, backend, {});
    backend.disposeData(z.dataId);
    const y = backend.makeOutput([...x.shape], 'float32');
    ops.mul(heapOffset(backend, x), heapOffset(backend, s), heapOffset(backend, y), n);
    return [y, s];
  };
}

const geluGrad: KernelFunc = (args) => {
  const { inputs, backend } = args as unknown as WasmKernelArgs;
  const x = float32(GELU_GRAD, 'x', input(inputs, 'x'));
  const s = float32(GELU_GRAD, 's', input(inputs, 's'), sizeOf(x));
  const dy = float32(GELU_GRAD, 'dy', input(inputs, 'dy'), sizeOf(x));
  const dx = backend.makeOutput([...x.shape], 'float32');
  const at = (t: TensorInfo): number => heapOffset(backend, t);
  opsFor(backend).gelu_grad(at(x), at(s), at(dy), at(dx), sizeOf(x));
  return dx;
};

/** Rows and columns of a layer norm input, checked. */
function rowsCols(kernel: string, x: TensorInfo): [number, number] {
  if (!layerNormFits(x.shape)) {
    throw new MrlError(
      'invalid-argument',
      `${kernel}: the last axis of x [${x.shape.join(', ')}] must be a positive multiple of 4.`,
      'Use the tensor-op layer norm for other widths (core picks it by itself).',
    );
  }
  const cols = x.shape[x.shape.length - 1]!;
  return [sizeOf(x) / cols, cols];
}

const layerNorm: KernelFunc = (args) => {
  const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<{ epsilon: number } & NamedAttrMap>;
  const x = float32(LAYER_NORM, 'x', input(inputs, 'x'));
  const [rows, cols] = rowsCols(LAYER_NORM, x);
  const gamma = float32(LAYER_NORM, 'gamma', input(inputs, 'gamma'), cols);
  const beta = float32(LAYER_NORM, 'beta', input(inputs, 'beta'), cols);
  const y = backend.makeOutput([...x.shape], 'float32');
  const mean = backend.makeOutput([rows], 'float32');
  const rstd = backend.makeOutput([rows], 'float32');
  const at = (t: TensorInfo): number => heapOffset(backend, t);
  opsFor(backend).layer_norm(at(x), at(gamma), at(beta), at(y), at(mean), at(rstd), rows, cols, attrs.epsilon);
  return [y, mean, rstd];
};

const layerNormGrad: KernelFunc = (args) => {
  const { inputs, backend } = args as unknown as WasmKernelArgs;
  const x = float32(LAYER_NORM_GRAD, 'x', input(inputs, 'x'));
  const [rows, cols] = rowsCols(LAYER_NORM_GRAD, x);
  const mean = float32(LAYER_NORM_GRAD, 'mean', input(inputs, 'mean'), rows);
  const rstd = float32(LAYER_NORM_GRAD, 'rstd', input(inputs, 'rstd'), rows);
  const gamma = float32(LAYER_NORM_GRAD, 'gamma', input(inputs, 'gamma'), cols);
  const dy = float32(LAYER_NORM_GRAD, 'dy', input(inputs, 'dy'), rows * cols);
  const dx = backend.makeOutput([...x.shape], 'float32');
  const dgamma = backend.makeOutput([cols], 'float32');
  const dbeta = backend.makeOutput([cols], 'float32');
  const at = (t: TensorInfo): number => heapOffset(backend, t);
  opsFor(backend).layer_norm_grad(
    at(x),
    at(mean),
    at(rstd),
    at(gamma),
    at(dy),
    at(dx),
    at(dgamma),
    at(dbeta),
    rows,
    cols,
  );
  return [dx, dgamma, dbeta];
};

export function createGeluKernel(get: (name: string) => KernelConfig): KernelConfig {
  const run = gelu(get(Sigmoid).kernelFunc);
  return { kernelName: GELU, backendName: WASM, kernelFunc: markOurs((args) => run(args)) };
}

export function createGeluGradKernel(): KernelConfig {
  return { kernelName: GELU_GRAD, backendName: WASM, kernelFunc: markOurs((args) => geluGrad(args)) };
}

export function createLayerNormKernel(): KernelConfig {
  return { kernelName: LAYER_NORM, backendName: WASM, kernelFunc: markOurs((args) => layerNorm(args)) };
}

export function createLayerNormGradKernel(): KernelConfig {
  return { kernelName: LAYER_NORM_GRAD, backendName: WASM, kernelFunc: markOurs((args) => layerNormGrad(args)) };
}

// Shared plumbing for our wasm kernels: they compose the backend's own kernels (Transpose,
// Conv2D, BatchMatMul) by calling their kernelFuncs directly, so every intermediate is a
// TensorInfo owned by us that must be freed with `backend.disposeData`.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

import { MrlError } from '../errors.js';

export const WASM = 'wasm';

/** The arguments tfjs passes to a kernelFunc, with the backend typed as the wasm one. */
export interface WasmKernelArgs<A = NamedAttrMap> {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: A;
}

/** The kernel registered for wasm under `name`; throws when the wasm backend is not loaded. */
export function wasmKernel(name: string): KernelConfig {
  const config = tf.getKernel(name, WASM);
  if (config === undefined) {
    throw new MrlError(
      'backend-unavailable',
      `The wasm backend has no '${name}' kernel registered, so the training kernels cannot be installed.`,
      "Import '@tensorflow/tfjs-backend-wasm' and await tf.setBackend('wasm') before registerWasmTrainingKernels().",
    );
  }
  return config;
}

/** Calls a kernelFunc that has exactly one output. */
export function callKernel(
  kernel: KernelFunc,
  inputs: NamedTensorInfoMap,
  backend: BackendWasm,
  attrs: object,
): TensorInfo {
  const out = kernel({ inputs, backend, attrs: attrs as NamedAttrMap });
  if (Array.isArray(out)) {
    throw new MrlError('unsupported', `Expected a single-output kernel, got ${out.length} outputs.`);
  }
  return out;
}

/** Reads input `name` of a kernel call; tfjs guarantees it is there, the types do not. */
export function input(inputs: NamedTensorInfoMap, name: string): TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new MrlError('invalid-argument', `Kernel input '${name}' is missing.`);
  return info;
}

/** Dimension `i` of a shape, checked (noUncheckedIndexedAccess). */
export function dim(shape: readonly number[], i: number): number {
  const d = shape[i < 0 ? shape.length + i : i];
  if (d === undefined) throw new MrlError('invalid-argument', `Shape [${shape.join(', ')}] has no dimension ${i}.`);
  return d;
}

/** A view of the same data under another shape of equal size (no copy, no new reference). */
export function view(x: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

/** `perm` that swaps the last two axes of a rank-`rank` tensor. */
export function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

/** Pairs [a, a] from a scalar-or-pair attribute (strides, dilations). */
export function pair(v: number | readonly number[] | undefined, fallback: number): [number, number] {
  if (v === undefined) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  return [v[0] ?? fallback, v[1] ?? fallback];
}

/**
 * Our replacement for a shipped kernel: its name, our kernelFunc (marked as ours), and the
 * shipped kernel's setup, which the backend runs when it initializes.
 */
export function replacing(original: KernelConfig, kernelFunc: KernelFunc): KernelConfig {
  return {
    kernelName: original.kernelName,
    backendName: WASM,
    kernelFunc: markOurs(kernelFunc),
    ...(original.setupFunc === undefined ? {} : { setupFunc: original.setupFunc }),
  };
}

/** A float32 tensor's values as a view of the wasm heap; the next heap growth detaches it. */
export function heapF32(backend: BackendWasm, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** Convolution attrs as TF.js's conv kernels take them; `dilations` is our extension for the backprops. */
export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil' | null | undefined;
  dilations?: number | [number, number] | undefined;
}

/** The geometry of a 2-D convolution of `inShape` by `filterShape` ([fh, fw, Cin, Cout]). */
export function conv2dInfo(
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvAttrs,
  channelsLast = true,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    pair(attrs.dilations, 1),
    attrs.pad,
    attrs.dimRoundingMode ?? undefined,
    false,
    channelsLast ? 'channelsLast' : 'channelsFirst',
  );
}

/** Marks a kernelFunc as ours, so that registering twice (even from two copies) is a no-op. */
export const OURS = Symbol.for('mrl/wasmTrainingKernel');

export function markOurs(kernel: KernelFunc): KernelFunc {
  Object.defineProperty(kernel, OURS, { value: true });
  return kernel;
}

export function isOurs(kernel: KernelFunc): boolean {
  return (kernel as unknown as Record<symbol, unknown>)[OURS] === true;
}

/** Rows of `B` elements copied per block in {@link swapOuterInner}; keeps the writes in cache. */
const SWAP_BLOCK = 1024;

/**
 * [A, M, B] -> [B, M, A] (swaps the outermost and innermost axes around a middle block), e.g.
 * NHWC [N, H*W, C] -> [C, H*W, N]. The shipped 4-D Transpose walks the input with a stride of
 * M*B for this permutation; this loop reads it sequentially in blocks of the middle axis and
 * keeps the scattered writes of a block cache-resident, which measured 2-3x faster here.
 */
export function swapOuterInner(backend: BackendWasm, x: TensorInfo, a: number, m: number, b: number): TensorInfo {
  const out = backend.makeOutput([b, m, a], x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const ma = m * a;
  const block = Math.max(1, Math.floor(SWAP_BLOCK / b));
  for (let m0 = 0; m0 < m; m0 += block) {
    const m1 = Math.min(m, m0 + block);
    for (let ai = 0; ai < a; ai++) {
      let from = (ai * m + m0) * b;
      for (let mi = m0; mi < m1; mi++) {
        const to = mi * a + ai;
        for (let bi = 0; bi < b; bi++) dst[to + bi * ma] = src[from++]!;
      }
    }
  }
  return out;
}

/** Byte offset of a tensor's data in the wasm heap (what our SIMD modules take as pointers). */
export function heapOffset(backend: BackendWasm, t: TensorInfo): number {
  return (backend.dataIdMap.get(t.dataId) as unknown as { memoryOffset: number }).memoryOffset;
}

/** The parts of the WebAssembly JS API used by `simdModule` (the project's TypeScript libs omit it). */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

/**
 * One of our SIMD modules (`simd/*.wat`, shipped as base64) instantiated on a wasm backend's own
 * heap, once per backend, so its loops read and write tensors where TF.js keeps them. `what` names
 * the kernels in the error when the backend does not export its memory.
 */
export function simdModule<Exports>(wasmBase64: string, what: string): (backend: BackendWasm) => Exports {
  const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
  const instances = new WeakMap<object, Exports>();
  return (backend) => {
    let found = instances.get(backend);
    if (found === undefined) {
      const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
      if (!(memory instanceof wasmApi.Memory)) {
        throw new MrlError(
          'backend-unavailable',
          `The wasm backend does not export its memory, so the ${what} cannot run on it.`,
        );
      }
      const module = new wasmApi.Module(Buffer.from(wasmBase64, 'base64'));
      found = new wasmApi.Instance(module, { env: { memory } }).exports as Exports;
      instances.set(backend, found);
    }
    return found;
  };
}

// Why: see ../random/philox.ts. `MrlDropoutMultiplier` makes a dropout mask as a tensor on the
// wasm backend, on the addon's threads where it is built (../native/onednn_random.ts), else in
// JavaScript; core's `dropoutMultiplier` draws the same bits on backends without the kernel.
import type { KernelConfig, KernelFunc, NamedAttrMap } from '@tensorflow/tfjs';
import type { NativeKernels } from '../native/onnxruntime.js';
import { dropoutDraw, fillDropoutMultiplier } from '../random/philox.js';
import { heapF32, markOurs, WASM, type WasmKernelArgs } from './util.js';

/** A dropout mask from a seed: no inputs; output float32 `shape` of 0 and 1 / (1 - rate). */
export const DROPOUT_MULTIPLIER = 'MrlDropoutMultiplier';

/** Attributes of {@link DROPOUT_MULTIPLIER}: see `dropoutDraw` in ../random/philox.ts. */
export interface DropoutMultiplierAttrs {
  shape: number[];
  rate: number;
  /** An integer in [0, 2^53). */
  seed: number;
}

/** The mask kernel: on `native.random` where given, else Philox in JavaScript (the same bits). */
export function createDropoutMultiplierKernel(native?: NativeKernels): KernelConfig {
  const random = native?.random;
  const kernelFunc: KernelFunc = (args) => {
    const { backend, attrs } = args as unknown as WasmKernelArgs<DropoutMultiplierAttrs & NamedAttrMap>;
    const draw = dropoutDraw(attrs.rate, attrs.seed);
    const out = backend.makeOutput([...attrs.shape], 'float32');
    // The view only after the allocation: a heap growth detaches earlier ones.
    const y = heapF32(backend, out);
    if (random !== undefined) random.dropoutMultiplier(draw, y);
    else fillDropoutMultiplier(draw, 0, y.length, y);
    return out;
  };
  return { kernelName: DROPOUT_MULTIPLIER, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

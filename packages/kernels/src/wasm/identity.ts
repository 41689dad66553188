// Why: the shipped wasm Identity copies its input into a new buffer, and gradients call it
// constantly (the gradient of add, of reshape-like ops, tf.clone): ~1,200 copies per ViT-tiny
// training step, ~5% of the step. Tensor data is immutable in TF.js, so the output can share the
// input's buffer under one more reference, as the cpu backend and the wasm Reshape already do.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs';

import { input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

/** `Identity` for wasm: the same buffer under one more reference (strings go to the shipped kernel). */
export function createIdentityKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.Identity);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend } = args as unknown as WasmKernelArgs;
    const x = input(inputs, 'x');
    if (x.dtype === 'string') return original.kernelFunc(args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
  return replacing(original, kernelFunc);
}

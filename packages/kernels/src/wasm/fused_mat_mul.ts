// Why: `_FusedMatMul` (tf.fused.matMul, what tfjs-layers' Dense calls) shares BatchMatMul's
// slow transposed path on wasm; the same explicit-transpose wrapper fixes it.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

import { createUntransposedMatMulKernel } from './batch_mat_mul.js';

/** `_FusedMatMul` for wasm: transposes explicitly, then calls the shipped fused product. */
export function createFusedMatMulKernel(get: (name: string) => KernelConfig): KernelConfig {
  return createUntransposedMatMulKernel(get(tf._FusedMatMul), get(tf.Transpose).kernelFunc);
}

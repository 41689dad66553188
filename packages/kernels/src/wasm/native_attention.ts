// Why: a transformer's self-attention ran as TF.js ops (Transpose, SplitV, two BatchMatMuls, a
// scale, Softmax, a Transpose back; Concat, transposes and softmax's gradient chain backward): in
// a 16-thread ViT-tiny step about 80 ms of ~210, most of it on one thread or as many tiny calls.
// These two kernels are the whole attention, forward and backward, as one call each on the oneDNN
// addon's OpenMP threads (native/attention.cc), one (batch, head) pair per iteration: q, k and v
// are read in place from the qkv projection's output and the merged output and d(qkv) are written
// in place, so no layout op remains. They exist only where the addon is built (register.ts);
// @mrl/core's `multiHeadAttention` (ViT's and BERT's attention) uses them where `tf.getKernel`
// finds them, else the TF.js ops. BERT's padding mask (a key bias [B, T]) and attention dropout
// (a dropout multiplier [B, H, T, T], core's dropoutMultiplier) are optional inputs.
//
// Measured (bench/attention-threads.mjs: forward + d(qkv) through TF.js, 2-core container, loaded):
// ViT-tiny's [16, 65, 9, 64] 5.9 ms fused against 8.3 ms for the TF.js ops at 1 thread, 3.9
// against 7.5 at 2; BERT-mini's [8, 128, 12, 64] with its mask and dropout 10.8 against 12.3 at 1
// thread, 8.5 against 12.8 at 2 (the kernels alone, ViT: 1.3 ms forward, 1.8-2.1 backward at 1
// thread). So they are registered at every thread count, the 1-thread step gaining too
// (bench/speed.mjs --models vit --threads 1: ~560 CPU ms a step before, ~480-520 after). Results
// are the same bits at every thread count (each pair is one iteration; its sums run in index order).
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

import { MrlError } from '../errors.js';
import type { NativeBatchNorm } from '../native/onednn_batch_norm.js';
import { heapF32, input, markOurs, WASM } from './util.js';
import type { WasmKernelArgs } from './util.js';

/**
 * Kernel name of fused multi-head self-attention: input `qkv` [B, T, 3H, dh] float32 (q, k, v as
 * heads 0..H-1, H..2H-1, 2H..3H-1 of axis 2), optional `keyBias` [B, T] (added to every query's
 * scores: a padding mask) and `dropout` [B, H, T, T] (a multiplier of the probabilities), attrs
 * {@link AttentionAttrs}; outputs `out` [B, T, H, dh] = (P dropout) v per (batch, head) and `p`
 * [B, H, T, T] = softmax(q k^T scale + keyBias), kept for the gradient.
 */
export const ATTENTION = 'MrlAttention';
/**
 * Kernel name of its gradient: inputs `dy` [B, T, H, dh], `p`, `qkv` and (when the forward had
 * one) `dropout` of the forward; output `dqkv` [B, T, 3H, dh].
 */
export const ATTENTION_GRAD = 'MrlAttentionGrad';

/** Attributes of {@link ATTENTION} and {@link ATTENTION_GRAD}: the scores' factor (1 / sqrt(dh) in a transformer). */
export interface AttentionAttrs {
  scale: number;
}

interface Geometry {
  batch: number;
  tokens: number;
  heads: number;
  headWidth: number;
}

function fail(kernel: string, message: string): never {
  throw new MrlError('invalid-argument', `${kernel}: ${message}`);
}

/** B, T, H and dh from a float32 `qkv` [B, T, 3H, dh]. */
function geometry(kernel: string, qkv: TensorInfo): Geometry {
  const [batch, tokens, triple, headWidth] = qkv.shape;
  if (
    qkv.dtype !== 'float32' ||
    qkv.shape.length !== 4 ||
    batch === undefined ||
    tokens === undefined ||
    triple === undefined ||
    headWidth === undefined ||
    triple % 3 !== 0
  ) {
    fail(
      kernel,
      `'qkv' is ${qkv.dtype} [${qkv.shape.join(', ')}]; it must be float32 [batch, tokens, 3 heads, headWidth] (q, k, v heads along axis 2).`,
    );
  }
  return { batch, tokens, heads: triple / 3, headWidth };
}

function expectShape(kernel: string, name: string, t: TensorInfo, want: number[]): void {
  if (t.dtype !== 'float32' || t.shape.join() !== want.join()) {
    fail(kernel, `'${name}' is ${t.dtype} [${t.shape.join(', ')}]; expected float32 [${want.join(', ')}].`);
  }
}

function scaleOf(kernel: string, attrs: NamedAttrMap): number {
  const scale = (attrs as unknown as Partial<AttentionAttrs>).scale;
  if (typeof scale !== 'number' || !Number.isFinite(scale))
    fail(kernel, `attr 'scale' is ${scale}; expected a finite number.`);
  return scale;
}

const empty = (g: Geometry): boolean => g.batch * g.tokens * g.heads * g.headWidth === 0;

/** `MrlAttention` on `native` (see {@link ATTENTION}). */
export function createNativeAttentionKernel(native: NativeBatchNorm): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs;
    const qkv = input(inputs, 'qkv');
    const g = geometry(ATTENTION, qkv);
    const scale = scaleOf(ATTENTION, attrs);
    const { batch, tokens, heads, headWidth } = g;
    const keyBias = inputs['keyBias'];
    const dropout = inputs['dropout'];
    if (keyBias !== undefined) expectShape(ATTENTION, 'keyBias', keyBias, [batch, tokens]);
    if (dropout !== undefined) expectShape(ATTENTION, 'dropout', dropout, [batch, heads, tokens, tokens]);
    const out = backend.makeOutput([batch, tokens, heads, headWidth], 'float32');
    const p = backend.makeOutput([batch, heads, tokens, tokens], 'float32');
    if (!empty(g)) {
      // Views only after the allocations: a heap growth detaches earlier ones.
      const at = (t: TensorInfo): Float32Array => heapF32(backend, t);
      const bias = keyBias === undefined ? undefined : at(keyBias);
      const mult = dropout === undefined ? undefined : at(dropout);
      native.attention(batch, tokens, heads, headWidth, scale, at(qkv), bias, mult, at(out), at(p));
    }
    return [out, p];
  };
  return { kernelName: ATTENTION, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

/** `MrlAttentionGrad` on `native` (see {@link ATTENTION_GRAD}). */
export function createNativeAttentionGradKernel(native: NativeBatchNorm): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs;
    const qkv = input(inputs, 'qkv');
    const dy = input(inputs, 'dy');
    const p = input(inputs, 'p');
    const g = geometry(ATTENTION_GRAD, qkv);
    const { batch, tokens, heads, headWidth } = g;
    expectShape(ATTENTION_GRAD, 'dy', dy, [batch, tokens, heads, headWidth]);
    expectShape(ATTENTION_GRAD, 'p', p, [batch, heads, tokens, tokens]);
    const dropout = inputs['dropout'];
    if (dropout !== undefined) expectShape(ATTENTION_GRAD, 'dropout', dropout, [batch, heads, tokens, tokens]);
    const scale = scaleOf(ATTENTION_GRAD, attrs);
    const dqkv = backend.makeOutput([...qkv.shape], 'float32');
    if (!empty(g)) {
      const at = (t: TensorInfo): Float32Array => heapF32(backend, t);
      const mult = dropout === undefined ? undefined : at(dropout);
      native.attentionGrad(batch, tokens, heads, headWidth, scale, at(dy), at(p), at(qkv), mult, at(dqkv));
    }
    return dqkv;
  };
  return { kernelName: ATTENTION_GRAD, backendName: WASM, kernelFunc: markOurs(kernelFunc) };
}

// Fused multi-head attention on the oneDNN addon (src/wasm/native_attention.ts, native/attention.cc):
// the forward output, the softmax and d(qkv) against an independent float64 computation of the
// same formulas on ViT-tiny's shape and odd ones (T not a multiple of 4 or 16, dh 8, one head),
// and with a key mask and a dropout multiplier (BERT's);
// the same bits at 1, 2 and 3 threads; that the addon really runs; the kernels' and the addon's
// refusals; and that without the addon the kernels are not registered.
import * as tf from '@tensorflow/tfjs';
import type { Tensor } from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ATTENTION, ATTENTION_GRAD, registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { expectClose, randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';

const present = oneDnnBatchNormAvailable();

const countedAttention = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['attention', 'attentionGrad']);

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

interface Case {
  b: number;
  t: number;
  h: number;
  dh: number;
  /** With a key bias [B, T] (padding: -1e9 on the last key of odd batch rows) and a dropout multiplier [B, H, T, T]. */
  masked?: boolean;
}

/** The key bias and dropout multiplier (rate 0.25: 0 or 4/3) of a masked case. */
function extras({ b, t, h }: Case, seed: number): { bias: Float32Array; mult: Float32Array } {
  const bias = new Float32Array(b * t);
  for (let bi = 1; bi < b; bi += 2) if (t > 1) bias[bi * t + t - 1] = -1e9;
  const keep = 0.75;
  const mult = randomArray(b * h * t * t, seed).map((u) => Math.fround(Math.floor((u + 1) / 2 + keep) / keep));
  return { bias, mult };
}

/** out, p and dqkv in float64 from the formulas (softmax max-subtracted). */
function reference(
  { b, t, h, dh }: Case,
  qkv: Float32Array,
  dy: Float32Array,
  scale: number,
  bias?: Float32Array,
  mult?: Float32Array,
) {
  const out = new Float64Array(b * t * h * dh);
  const p = new Float64Array(b * h * t * t);
  const dqkv = new Float64Array(qkv.length);
  const rs = 3 * h * dh;
  const at = (bi: number, i: number, head: number, d: number) => (bi * t + i) * rs + head * dh + d;
  const ot = (bi: number, i: number, head: number, d: number) => ((bi * t + i) * h + head) * dh + d;
  for (let bi = 0; bi < b; bi++) {
    for (let hh = 0; hh < h; hh++) {
      const P = p.subarray((bi * h + hh) * t * t, (bi * h + hh + 1) * t * t);
      const M = (i: number, j: number): number => mult?.[(bi * h + hh) * t * t + i * t + j] ?? 1;
      for (let i = 0; i < t; i++) {
        let m = -Infinity;
        for (let j = 0; j < t; j++) {
          let s = 0;
          for (let d = 0; d < dh; d++) s += qkv[at(bi, i, hh, d)]! * qkv[at(bi, j, h + hh, d)]!;
          const z = s * scale + (bias?.[bi * t + j] ?? 0);
          P[i * t + j] = z;
          m = Math.max(m, z);
        }
        let sum = 0;
        for (let j = 0; j < t; j++) sum += P[i * t + j] = Math.exp(P[i * t + j]! - m);
        for (let j = 0; j < t; j++) P[i * t + j]! /= sum;
        for (let d = 0; d < dh; d++) {
          let o = 0;
          for (let j = 0; j < t; j++) o += P[i * t + j]! * M(i, j) * qkv[at(bi, j, 2 * h + hh, d)]!;
          out[ot(bi, i, hh, d)] = o;
        }
      }
      // dP = (dO v^T) M, dS = P (dP - rowsum(dP P)); dQ = scale dS k, dK = scale dS^T q, dV = (P M)^T dO.
      for (let i = 0; i < t; i++) {
        const dP = new Float64Array(t);
        let dot = 0;
        for (let j = 0; j < t; j++) {
          for (let d = 0; d < dh; d++) dP[j]! += dy[ot(bi, i, hh, d)]! * qkv[at(bi, j, 2 * h + hh, d)]!;
          dP[j]! *= M(i, j);
          dot += dP[j]! * P[i * t + j]!;
        }
        for (let j = 0; j < t; j++) {
          const dS = P[i * t + j]! * (dP[j]! - dot) * scale;
          const pij = P[i * t + j]! * M(i, j);
          for (let d = 0; d < dh; d++) {
            dqkv[at(bi, i, hh, d)]! += dS * qkv[at(bi, j, h + hh, d)]!;
            dqkv[at(bi, j, h + hh, d)]! += dS * qkv[at(bi, i, hh, d)]!;
            dqkv[at(bi, j, 2 * h + hh, d)]! += pij * dy[ot(bi, i, hh, d)]!;
          }
        }
      }
    }
  }
  return { out, p, dqkv };
}

/** out, p and dqkv from the registered kernels. */
function run(
  { b, t, h, dh }: Case,
  qkv: Float32Array,
  dy: Float32Array,
  scale: number,
  bias?: Float32Array,
  mult?: Float32Array,
) {
  return tf.tidy(() => {
    const x = tf.tensor4d(qkv, [b, t, 3 * h, dh]);
    const dropout = mult === undefined ? {} : { dropout: tf.tensor4d(mult, [b, h, t, t]) };
    const keyBias = bias === undefined ? {} : { keyBias: tf.tensor2d(bias, [b, t]) };
    const [out, p] = tf.engine().runKernel(ATTENTION, { qkv: x, ...keyBias, ...dropout }, { scale }) as Tensor[];
    expect(out!.shape).toEqual([b, t, h, dh]);
    expect(p!.shape).toEqual([b, h, t, t]);
    const dy4 = tf.tensor4d(dy, [b, t, h, dh]);
    const dqkv = tf.engine().runKernel(ATTENTION_GRAD, { dy: dy4, p: p!, qkv: x, ...dropout }, { scale });
    return { out: out!.dataSync().slice(), p: p!.dataSync().slice(), dqkv: (dqkv as Tensor).dataSync().slice() };
  });
}

const CASES: ReadonlyArray<readonly [string, Case]> = [
  ["ViT-tiny's [16, 65, 9, 64]", { b: 16, t: 65, h: 3, dh: 64 }],
  ['T 13, dh 8, 2 heads', { b: 2, t: 13, h: 2, dh: 8 }],
  ['one head, T 1', { b: 3, t: 1, h: 1, dh: 16 }],
  ['one head, T 21, dh 24', { b: 1, t: 21, h: 1, dh: 24 }],
  ['BERT-like T 37, 4 heads of 16, with a key mask and dropout', { b: 3, t: 37, h: 4, dh: 16, masked: true }],
];

describe('fused attention on the addon', () => {
  it('is registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  for (const [what, c] of CASES) {
    it(`${what}: out, p and d(qkv) as the formulas in float64 (1e-5), the same bits at 1, 2 and 3 threads`, () => {
      if (!present) return;
      const n = c.b * c.t * 3 * c.h * c.dh;
      // Scores of a few units: the softmax is neither flat nor one-hot.
      const qkv = randomArray(n, 7 + n).map((v) => v * 1.5);
      const dy = randomArray(c.b * c.t * c.h * c.dh, 11 + n);
      const scale = 1 / Math.sqrt(c.dh);
      const { bias, mult } = c.masked === true ? extras(c, 13 + n) : { bias: undefined, mult: undefined };
      const want = reference(c, qkv, dy, scale, bias, mult);
      let first: ReturnType<typeof run> | undefined;
      for (const threads of [1, 2, 3]) {
        const { native, calls } = countedAttention(nativeKernels({ threads }), `attention ${what} ${threads}`);
        registerWasmTrainingKernels({ native });
        const got = run(c, qkv, dy, scale, bias, mult);
        expect(calls()).toBe(2);
        expectClose(got.out, want.out, 1e-5);
        expectClose(got.p, want.p, 1e-5);
        expectClose(got.dqkv, want.dqkv, 1e-5);
        if (first === undefined) first = got;
        else {
          expect(Buffer.from(got.out.buffer).equals(Buffer.from(first.out.buffer)), `out at ${threads}`).toBe(true);
          expect(Buffer.from(got.p.buffer).equals(Buffer.from(first.p.buffer)), `p at ${threads}`).toBe(true);
          expect(Buffer.from(got.dqkv.buffer).equals(Buffer.from(first.dqkv.buffer)), `dqkv at ${threads}`).toBe(true);
        }
      }
    });
  }

  it('refuses inputs of the wrong shape or dtype, naming them', () => {
    if (!present) return;
    registerWasmTrainingKernels({ native: nativeKernels({ threads: 2 }) });
    const scale = 0.5;
    tf.tidy(() => {
      expect(() => tf.engine().runKernel(ATTENTION, { qkv: tf.zeros([2, 3, 4, 8]) }, { scale })).toThrow(
        "MrlAttention: 'qkv' is float32 [2, 3, 4, 8]; it must be float32 [batch, tokens, 3 heads, headWidth]",
      );
      expect(() => tf.engine().runKernel(ATTENTION, { qkv: tf.zeros([2, 3, 3, 8], 'int32') }, { scale })).toThrow(
        "MrlAttention: 'qkv' is int32 [2, 3, 3, 8]",
      );
      expect(() => tf.engine().runKernel(ATTENTION, { qkv: tf.zeros([2, 3, 3, 8]) }, {})).toThrow(
        "MrlAttention: attr 'scale' is undefined; expected a finite number.",
      );
      const qkv = tf.zeros([2, 3, 6, 8]);
      expect(() =>
        tf
          .engine()
          .runKernel(ATTENTION_GRAD, { dy: tf.zeros([2, 3, 2, 8]), p: tf.zeros([2, 2, 3, 4]), qkv }, { scale }),
      ).toThrow("MrlAttentionGrad: 'p' is float32 [2, 2, 3, 4]; expected float32 [2, 2, 3, 3].");
      expect(() =>
        tf.engine().runKernel(ATTENTION_GRAD, { dy: tf.zeros([2, 3, 8]), p: tf.zeros([2, 2, 3, 3]), qkv }, { scale }),
      ).toThrow("MrlAttentionGrad: 'dy' is float32 [2, 3, 8]; expected float32 [2, 3, 2, 8].");
      expect(() => tf.engine().runKernel(ATTENTION, { qkv, keyBias: tf.zeros([2, 4]) }, { scale })).toThrow(
        "MrlAttention: 'keyBias' is float32 [2, 4]; expected float32 [2, 3].",
      );
      expect(() => tf.engine().runKernel(ATTENTION, { qkv, dropout: tf.zeros([2, 2, 3]) }, { scale })).toThrow(
        "MrlAttention: 'dropout' is float32 [2, 2, 3]; expected float32 [2, 2, 3, 3].",
      );
    });
  });

  it('the addon refuses arrays whose lengths do not match, naming the array, and bad dims', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<'attention' | 'attentionGrad', (...args: unknown[]) => void>;
    const f = (n: number): Float32Array => new Float32Array(n);
    const dims = Int32Array.of(2, 1, 3, 2, 4); // qkv 72 values, out 24, p 18
    const none = f(0);
    expect(() => raw.attention(dims, 0.5, f(72), none, none, f(24), f(17))).toThrow(
      'onednn: attention p has 17 values, expected 18',
    );
    expect(() => raw.attention(dims, 0.5, f(72), f(4), none, f(24), f(18))).toThrow(
      'onednn: attention keyBias has 4 values, expected 3 (or 0: none)',
    );
    expect(() => raw.attention(Int32Array.of(2, 1, 3, 0, 4), 0.5, none, none, none, none, none)).toThrow(
      'onednn: attention threads, batch, tokens, heads and headWidth must be positive',
    );
    expect(() => raw.attention(dims, Number.NaN, f(72), none, none, f(24), f(18))).toThrow(
      'onednn: attention scale must be a finite number',
    );
    expect(() => raw.attentionGrad(dims, 0.5, f(24), f(18), f(72), f(17), f(72))).toThrow(
      'onednn: attentionGrad mult has 17 values, expected 18 (or 0: none)',
    );
    expect(() => raw.attentionGrad(dims, 0.5, f(24), f(18), f(72), none, f(71))).toThrow(
      'onednn: attentionGrad dqkv has 71 values, expected 72',
    );
    expect(() => raw.attentionGrad(dims, 0.5, f(24), f(18), f(72), f(72))).toThrow(
      'onednn: attentionGrad takes (dims, scale, dy, p, qkv, mult, dqkv)',
    );
  });

  it('without the addon (or on wasm alone) the kernels are not registered', () => {
    registerWasmTrainingKernels();
    expect(tf.getKernel(ATTENTION, 'wasm')).toBeUndefined();
    registerWasmTrainingKernels({ native: nativeKernels({ batchNorm: 'wasm', threads: 2 }) });
    expect(tf.getKernel(ATTENTION, 'wasm')).toBeUndefined();
    expect(tf.getKernel(ATTENTION_GRAD, 'wasm')).toBeUndefined();
  });
});

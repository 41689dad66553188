import { existsSync } from 'node:fs';
import { createRandom, initBackend, MrlError } from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MultiHeadAttention } from '../src/models/attention.js';
import { expectClose, values } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('MultiHeadAttention', () => {
  it('matches a per-head reference computation', () => {
    const attention = new MultiHeadAttention({ width: 4, heads: 2 }, createRandom(1));
    const x = tf.randomNormal([1, 3, 4], 0, 1, 'float32', 3) as tf.Tensor3D;
    const got = values(attention.apply(x));
    const qkv = tf.add(tf.matMul(tf.reshape(x, [3, 4]), attention.qkv.w), attention.qkv.b); // [3, 12]
    const heads = [0, 1].map((h) => {
      const q = tf.slice(qkv, [0, 2 * h], [3, 2]);
      const k = tf.slice(qkv, [0, 4 + 2 * h], [3, 2]);
      const v = tf.slice(qkv, [0, 8 + 2 * h], [3, 2]);
      return tf.matMul(tf.softmax(tf.div(tf.matMul(q, tf.transpose(k)), Math.sqrt(2))), v);
    });
    const expected = tf.add(tf.matMul(tf.concat(heads, 1), attention.out.w), attention.out.b);
    expectClose(got, values(expected), 1e-5);
  });

  it('has gradients that match central finite differences', () => {
    const attention = new MultiHeadAttention({ width: 4, heads: 2 }, createRandom(2));
    const x = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 4) as tf.Tensor3D;
    const r = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 5);
    const f = (): tf.Scalar => tf.sum(tf.mul(attention.apply(x), r));
    const vars = [...attention.variables()];
    const { grads } = tf.variableGrads(
      f,
      vars.map(([, v]) => v),
    );
    const eps = 1e-2;
    for (const [name, variable] of vars) {
      const analytic = values(grads[variable.name]!);
      const base = Float32Array.from(values(variable));
      const numeric = new Float32Array(base.length);
      // Every entry of the small layers, a sample of the rest.
      const step = Math.max(1, Math.floor(base.length / 12));
      for (let i = 0; i < base.length; i += step) {
        const at = (delta: number): number => {
          const moved = Float32Array.from(base);
          moved[i]! += delta;
          variable.assign(tf.tensor(moved, variable.shape));
          return f().dataSync()[0]!;
        };
        numeric[i] = (at(eps) - at(-eps)) / (2 * eps);
        variable.assign(tf.tensor(base, variable.shape));
        if (Math.abs(numeric[i]! - analytic[i]!) > 2e-3 * Math.max(1, Math.abs(analytic[i]!))) {
          throw new Error(`${name}[${i}]: analytic ${analytic[i]} vs numeric ${numeric[i]}`);
        }
      }
    }
    // The input gradient too (what earlier layers receive).
    const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(attention.apply(input as tf.Tensor3D), r)))(x);
    const base = Float32Array.from(values(x));
    for (let i = 0; i < base.length; i += 5) {
      const at = (delta: number): number => {
        const moved = Float32Array.from(base);
        moved[i]! += delta;
        return tf.sum(tf.mul(attention.apply(tf.tensor3d(moved, [2, 3, 4])), r)).dataSync()[0]!;
      };
      expect(Math.abs((at(eps) - at(-eps)) / (2 * eps) - values(dx)[i]!)).toBeLessThan(2e-3);
    }
  });

  it('saves and loads its weights under stable names', () => {
    const a = new MultiHeadAttention({ width: 8, heads: 4 }, createRandom(1));
    const b = new MultiHeadAttention({ width: 8, heads: 4 }, createRandom(2));
    const weights = a.weights();
    expect([...weights.keys()]).toEqual(['qkv/w', 'qkv/b', 'out/w', 'out/b']);
    expect(weights.get('qkv/w')!.shape).toEqual([8, 24]);
    b.loadWeights(weights);
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 9) as tf.Tensor3D;
    expectClose(values(b.apply(x)), values(a.apply(x)), 1e-6);
    const partial = new Map(weights);
    partial.delete('out/b');
    expect(() => b.loadWeights(partial, 'attn.safetensors')).toThrow("attn.safetensors has no tensor 'out/b'.");
    partial.set('out/b', { dtype: 'F32', shape: [3], data: new Float32Array(3) });
    expect(() => b.loadWeights(partial, 'attn.safetensors')).toThrow(
      "attn.safetensors: tensor 'out/b' has shape [3], the model needs [8].",
    );
  });

  it('on wasm with the fused attention kernels (oneDNN addon): output and weight gradients as on cpu', async () => {
    const attention = new MultiHeadAttention({ width: 24, heads: 3 }, createRandom(6));
    const x = tf.randomNormal([2, 11, 24], 0, 1, 'float32', 7) as tf.Tensor3D;
    const r = tf.randomNormal([2, 11, 24], 0, 1, 'float32', 8);
    const run = () => {
      const vars = [...attention.variables().values()];
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(attention.apply(x), r)), vars);
      const out = [values(attention.apply(x)), values(value), ...vars.map((v) => values(grads[v.name]!))];
      tf.dispose([value, ...Object.values(grads)]);
      return out.map((a) => Float32Array.from(a));
    };
    const want = run();
    try {
      await initBackend('wasm', { threads: 2 });
      if (existsSync('/usr/include/oneapi/dnnl/dnnl.hpp')) expect(tf.getKernel('MrlAttention', 'wasm')).toBeDefined();
      const got = run();
      for (const [i, g] of got.entries()) expectClose(g, want[i]!, 1e-5);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('rejects a width that heads do not divide', () => {
    const error = (() => {
      try {
        new MultiHeadAttention({ width: 6, heads: 4 }, createRandom(0));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(MrlError.is(error) && error.message).toBe('attention width 6 must be a positive multiple of heads 4.');
  });
});

import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '@mrl/kernels';
import { gelu } from '../src/ops/gelu.js';
import { layerNorm } from '../src/ops/normalize.js';
import { AdamWOptimizer } from '../src/optim/adamw.js';

// Native kernels on two threads split each product between them; the split depends on the shape
// and the thread count only, so the same run gives the same losses, bit for bit.

/** Losses of a few AdamW steps of a small transformer-style block (GEMM, layer norm, GELU). */
function train(steps: number): number[] {
  const values = (n: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.37) * 0.05);
  const d = 256;
  const vars = new Map<string, tf.Variable>([
    ['w1', tf.variable(tf.tensor2d(values(d * 4 * d, 1), [d, 4 * d]), true, 'det/w1')],
    ['w2', tf.variable(tf.tensor2d(values(4 * d * d, 2), [4 * d, d]), true, 'det/w2')],
    ['gamma', tf.variable(tf.ones([d]), true, 'det/gamma')],
    ['beta', tf.variable(tf.zeros([d]), true, 'det/beta')],
  ]);
  const x = tf.tensor2d(values(128 * d, 3), [128, d]);
  const target = tf.tensor2d(values(128 * d, 4), [128, d]);
  const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 1e-5, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => {
      const h = layerNorm(x, vars.get('gamma') as tf.Tensor1D, vars.get('beta') as tf.Tensor1D, 1e-6);
      const y = tf.matMul(gelu(tf.matMul(h, vars.get('w1')!)), vars.get('w2')!);
      return tf.mean(tf.square(tf.sub(tf.add(y, x), target)));
    }, [...vars.values()]);
    optimizer.apply(vars, new Map([...vars].map(([k, v]) => [k, grads[v.name]!])), 1e-5);
    losses.push(value.dataSync()[0]!);
    tf.dispose([value, ...Object.values(grads)]);
  }
  tf.dispose([x, target, ...vars.values()]);
  return losses;
}

describe('threads', () => {
  it('two runs on 2 threads give the same losses, bit for bit', async () => {
    const info = await initBackend('wasm', { threads: 2 });
    const first = train(4);
    const second = train(4);
    expect(second).toEqual(first);
    expect(first.every(Number.isFinite)).toBe(true);
    expect(first[3]).toBeLessThan(first[0]!); // it trains
    // On native kernels the pool really has two threads (without them, wasm runs on one).
    if (info.detail.includes('ONNX Runtime')) expect(info.detail).toContain('2 threads');
  });
});

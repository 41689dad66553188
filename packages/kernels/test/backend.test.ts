import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';

describe('initBackend', () => {
  it('starts a backend once: asking again for the active one returns it as it is', async () => {
    const first = await initBackend('cpu');
    const tensor = tf.tensor1d([1, 2, 3]);
    const again = await initBackend('cpu');
    expect(again).toBe(first);
    expect(tf.getBackend()).toBe('cpu');
    expect(Array.from(tensor.dataSync())).toEqual([1, 2, 3]); // same engine state, nothing reset
    tensor.dispose();
  });

  it('switches when another backend is asked for, and back', async () => {
    const wasm = await initBackend('wasm');
    expect(wasm.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const cpu = await initBackend('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(cpu.name).toBe('cpu');
  });

  it('names an unknown backend and lists the known ones', async () => {
    await expect(initBackend('cuda')).rejects.toThrow("unknown backend 'cuda'.");
  });

  it('runs wasm products on ONNX Runtime by default and in wasm when asked, with equal results', async () => {
    const product = () => {
      const a = tf.tensor2d(
        Array.from({ length: 40 }, (_, i) => Math.sin(i)),
        [8, 5],
      );
      const b = tf.tensor2d(
        Array.from({ length: 15 }, (_, i) => Math.cos(i)),
        [5, 3],
      );
      const out = tf.matMul(a, b, false, false).dataSync().slice();
      tf.dispose([a, b]);
      return out;
    };
    const native = await initBackend('wasm');
    expect(native.detail).toContain('ONNX Runtime');
    const viaNative = product();
    const wasm = await initBackend('wasm', { kernels: 'wasm' });
    expect(wasm.detail).toContain('on XNNPACK');
    const viaXnnpack = product();
    for (let i = 0; i < viaNative.length; i++) expect(viaNative[i]).toBeCloseTo(viaXnnpack[i]!, 5);
    expect((await initBackend('wasm', { kernels: 'onnxruntime' })).detail).toContain('ONNX Runtime');
  });

  it('names an unknown kernel source and lists the known ones', async () => {
    await expect(initBackend('wasm', { kernels: 'blas' as never })).rejects.toMatchObject({
      message: "unknown kernel source 'blas'.",
      fix: 'Choose one of: auto, onnxruntime, wasm.',
    });
  });

  it('keeps the running kernels when a later call does not name them', async () => {
    const chosen = await initBackend('wasm', { kernels: 'wasm' });
    expect(await initBackend('wasm')).toBe(chosen);
    const native = await initBackend('wasm', { kernels: 'onnxruntime' });
    expect(native).not.toBe(chosen);
    expect(await initBackend('wasm')).toBe(native);
  });
});

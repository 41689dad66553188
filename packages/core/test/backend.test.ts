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
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { expectClose, expectKernelMatchesCpu, randomHost } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

describe('Identity on wasm', () => {
  it('matches cpu for float32 and int32', async () => {
    await expectKernelMatchesCpu('Identity', { x: randomHost([3, 4, 5], 1) }, {});
    const ints = tf.tensor1d([1, -2, 3], 'int32');
    const out = tf.clone(ints);
    expect(out.dtype).toBe('int32');
    expect(Array.from(await out.data())).toEqual([1, -2, 3]);
    tf.dispose([ints, out]);
  });

  it('shares the buffer: disposing either side leaves the other readable, no bytes leak', async () => {
    const buffers = () => tf.engine().backend.numDataIds();
    const before = buffers();
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    expect(buffers() - before).toBe(1); // one buffer for both
    x.dispose();
    expectClose(await y.data(), [1, 2, 3, 4], 0);
    y.dispose();
    expect(buffers()).toBe(before);
  });

  it('gradients through add and clone equal the cpu ones', async () => {
    const values = randomHost([4, 3], 2);
    const grad = (backend: string) => {
      tf.setBackend(backend);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.clone(x), x), x)))(
        tf.tensor(values.values, values.shape),
      );
      const out = g.dataSync().slice();
      g.dispose();
      return out;
    };
    const cpu = grad('cpu');
    const wasm = grad('wasm');
    expectClose(wasm, cpu, 1e-6);
  });
});

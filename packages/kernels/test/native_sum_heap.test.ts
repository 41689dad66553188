// Sums through `tf.sum` on the wasm backend give the same bits wherever the input sits in the wasm
// heap (src/wasm/native_binary.ts, native/binary.cc): ONNX Runtime's ReduceSum, which ran every
// axis set but the leading and last ones before, rounds differently with the address, so a
// gradient-norm clip depended on the process's allocation history. In a file of its own: the
// placement below relies on a heap that other tests have not fragmented (and checks that it
// really moved the input).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import { heapOffset } from '../src/wasm/util.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels } from './helpers/onednn.js';

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

it('Sum over every axis, [0, 2] and a middle axis: the same bits at 17 heap addresses', () => {
  if (!present) return;
  const shape = [8, 128, 256];
  const n = 8 * 128 * 256;
  const x = randomArray(n, 77);
  const { native, calls } = countedNative(nativeKernels({ threads: 2 }), 'heap offsets', 'batchNorm', [
    'sumLeading',
    'sumLast',
    'sumMiddle',
    'sumAll',
  ]);
  registerWasmTrainingKernels({ native });
  const backend = tf.backend() as BackendWasm;
  for (const axes of [undefined, [0, 2], [1]]) {
    const bits = new Set<string>();
    const offsets = new Set<number>();
    for (let pad = 1; pad <= 17; pad++) {
      // A freed block as large as x, then `pad` values carved from its start: x lands after them.
      tf.zeros([n + 64]).dispose();
      const small = tf.zeros([pad]);
      const t = tf.tensor(x, shape);
      offsets.add(heapOffset(backend, t) % 64);
      const y = tf.tidy(() => tf.sum(t, axes).dataSync() as Float32Array);
      bits.add(Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('hex'));
      tf.dispose([small, t]);
    }
    // The input really moved (8-byte steps: the allocator's alignment), and the sum did not change.
    expect(offsets.size).toBeGreaterThanOrEqual(4);
    expect(bits.size).toBe(1);
  }
  // Every axis: one sumAll; [0, 2]: sumLast then sumLeading; [1]: sumMiddle.
  expect(calls()).toBe(17 * (1 + 2 + 1));
});

// clipByGlobalNorm (src/optim/clip.ts): the norm against a float64 computation, the clipped
// gradients, and the same norm bits after different allocation histories on the wasm backend with
// the native kernels (the sum over all axes of a gradient's square runs on the oneDNN addon in an
// order fixed by the shape, where ONNX Runtime's ReduceSum rounded with the array's heap address:
// a resumed run, on a fresh heap, could not reproduce the clipping scale of a continuous one).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '@mrl/kernels';
import { loadOnnxRuntimeKernels } from '@mrl/kernels/native';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clipByGlobalNorm } from '../src/optim/clip.js';
import { randomArray } from './helpers/close.js';

const native = loadOnnxRuntimeKernels({ threads: 2 });
const addonHere = native?.batchNorm !== undefined;

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels(native === undefined ? {} : { native });
});
afterAll(() => registerWasmTrainingKernels());

// A BERT-like gradient map: a [3000, 256] embedding gradient (768,000 values, above the native
// kernels' 65,536), a [256, 256] weight and a bias.
const SHAPES: Record<string, number[]> = { embedding: [3000, 256], dense: [256, 256], bias: [256] };
const VALUES = Object.fromEntries(
  Object.entries(SHAPES).map(([name, shape], i) => [
    name,
    randomArray(
      shape.reduce((p, d) => p * d, 1),
      90 + i,
    ),
  ]),
);

const gradients = () =>
  new Map(Object.entries(SHAPES).map(([name, shape]) => [name, tf.tensor(VALUES[name]!, shape)] as const));

// The allocation-history test runs first, on a heap no other test has fragmented (the placement
// below relies on it, and checks that it really moved the arrays).
describe('clipByGlobalNorm', () => {
  it('gives the same norm bits after 17 different allocation histories', async () => {
    // Without the addon the sums stay on ONNX Runtime, whose bits differ here (two norms).
    if (!addonHere) return;
    const norms = new Set<number>();
    const offsets = new Set<number>();
    const backend = tf.backend() as unknown as { dataIdMap: { get(id: object): { memoryOffset: number } } };
    const kept: tf.Tensor[] = [];
    for (let pad = 1; pad <= 17; pad++) {
      // Another allocation history each round: one more tensor of the embedding gradient's size
      // and `pad` values more (kept), so the gradients and their squares land elsewhere.
      kept.push(tf.zeros([3000 * 256 + pad]));
      const small = tf.zeros([pad]);
      const grads = gradients();
      offsets.add(backend.dataIdMap.get(grads.get('embedding')!.dataId).memoryOffset % 64);
      const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1);
      norms.add(norm);
      tf.dispose([small, ...grads.values(), ...clipped.values()]);
    }
    tf.dispose(kept);
    // The arrays really moved (8-byte steps, the allocator's alignment), and the norm did not.
    expect(offsets.size).toBeGreaterThanOrEqual(4);
    expect(norms.size).toBe(1);
  });

  it("returns float64's norm (to float32 rounding) and scales every gradient by maxNorm / norm", async () => {
    const grads = gradients();
    const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1);
    let squares = 0;
    for (const values of Object.values(VALUES)) for (const v of values) squares += v * v;
    const want = Math.sqrt(squares);
    // The addon's sum of all values: float32 lanes of 256 values, blocks in double (ONNX Runtime's
    // ReduceSum, without the addon, was 4e-6 off here).
    expect(Math.abs(norm - want) / want).toBeLessThan(addonHere ? 1e-6 : 1e-5);
    const scale = 1 / (norm + 1e-6);
    const embedding = clipped.get('embedding')!.dataSync();
    for (const k of [0, 1, 12345, 767_999]) expect(embedding[k]).toBeCloseTo(VALUES['embedding']![k]! * scale, 6);
    tf.dispose([...grads.values(), ...clipped.values()]);
  });
});

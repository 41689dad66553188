import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@mrl/kernels';
import { MrlError } from '../../src/errors.js';
import type { ArrayDataset } from '../../src/experiments/array-dataset.js';
import { trainClassifier } from '../../src/experiments/classification.js';
import { MlpEncoder } from '../../src/mlp.js';
import { createRandom } from '../../src/rng.js';

// 64 random 12-value examples over 20 classes: enough for one AdamW step on every head row.
const N = 64;
const C = 20;
const data: ArrayDataset = {
  inputs: Float32Array.from({ length: N * 12 }, (_, i) => Math.sin(i * 0.37) + 0.5),
  exampleShape: [12],
  labels: Int32Array.from({ length: N }, (_, i) => i % C),
  count: N,
  numClasses: C,
};

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

/** One step from the same initial weights; returns every variable's values after it. */
async function oneStep(headLrScale: number | undefined): Promise<Map<string, Float32Array>> {
  const encoder = new MlpEncoder(
    { architecture: 'mlp', inputDim: 12, hidden: [16], embeddingDim: 16 },
    createRandom(5),
  );
  const run = await trainClassifier({
    encoder,
    train: data,
    dims: [4, 8, 16],
    head: 'separate',
    ...(headLrScale === undefined ? {} : { headLrScale }),
    trainer: { steps: 1, batchSize: N, seed: 0, optimizer: { type: 'adamw', lr: 1e-3 } },
  });
  const out = new Map<string, Float32Array>();
  for (const [name, v] of run.head.variables()) out.set(`head/${name}`, v.dataSync() as Float32Array);
  for (const [name, v] of encoder.variables()) out.set(`encoder/${name}`, v.dataSync() as Float32Array);
  tf.dispose([...run.head.variables().values()]);
  encoder.dispose();
  return out;
}

const meanAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + Math.abs(x - b[i]!), 0) / a.length;

describe('trainClassifier headLrScale', () => {
  it("scales the heads' step and leaves the encoder's alone", async () => {
    // A scale of 1e-4 leaves the heads at their initial values to within 1e-7: the reference point.
    const still = await oneStep(1e-4);
    const plain = await oneStep(undefined);
    const fast = await oneStep(10);
    for (const m of [4, 8, 16]) {
      const key = `head/w${m}`;
      const moved = meanAbsDiff(plain.get(key)!, still.get(key)!);
      // AdamW's first step moves a weight by about lr (its gradient's sign): 1e-3 here.
      expect(moved, key).toBeGreaterThan(5e-4);
      expect(meanAbsDiff(fast.get(key)!, still.get(key)!) / moved, key).toBeCloseTo(10, 1);
    }
    for (const [key, values] of plain) {
      if (!key.startsWith('encoder/')) continue;
      expect(meanAbsDiff(fast.get(key)!, values), key).toBe(0);
    }
  });

  it('refuses a scale that is not a finite number > 0, naming the value', async () => {
    const encoder = new MlpEncoder({ architecture: 'mlp', inputDim: 12, hidden: [], embeddingDim: 8 }, createRandom(1));
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await trainClassifier({
        encoder,
        train: data,
        dims: [4, 8],
        head: 'separate',
        headLrScale: bad,
        trainer: { steps: 1, batchSize: N, seed: 0, optimizer: { type: 'adamw', lr: 1e-3 } },
      }).catch((e: unknown) => e);
      expect(MrlError.is(error)).toBe(true);
      expect((error as MrlError).message).toBe(`headLrScale must be a finite number > 0, got ${bad}.`);
    }
    encoder.dispose();
  });
});

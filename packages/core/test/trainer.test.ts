import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCheckpoints, loadCheckpoint } from '../src/checkpoint.js';
import { MrlError } from '../src/errors.js';
import { classificationBatches, type ArrayDataset } from '../src/experiments/array-dataset.js';
import { SharedHead } from '../src/heads.js';
import { MatryoshkaLoss } from '../src/matryoshka-loss.js';
import { MlpEncoder } from '../src/mlp.js';
import { MatryoshkaModel, type SupervisedBatch } from '../src/model.js';
import { ClassificationObjective, type ClassTarget } from '../src/objective.js';
import { clipByGlobalNorm } from '../src/optim/clip.js';
import type { OptimizerConfig } from '../src/optim/optimizer.js';
import { createRandom } from '../src/rng.js';
import { Trainer, type TrainerOptions, type TrainEvent } from '../src/trainer.js';
import { expectMrlError } from './helpers/errors.js';

type Batch = SupervisedBatch<tf.Tensor, ClassTarget>;
type Model = MatryoshkaModel<tf.Tensor, ClassTarget>;

const FEATURES = 20;
const CLASSES = 4;
const EMBEDDING = 16;
const DIMS = [4, 8, 16];

/** 256 examples around 4 seeded class centres in 20 dims. */
function syntheticDataset(seed: number, count = 256): ArrayDataset {
  const random = createRandom(seed, 99);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const centres = Array.from({ length: CLASSES }, () => Float32Array.from({ length: FEATURES }, () => 2 * gauss()));
  const inputs = new Float32Array(count * FEATURES);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % CLASSES;
    labels[i] = label;
    for (let j = 0; j < FEATURES; j++) inputs[i * FEATURES + j] = centres[label]![j]! + gauss();
  }
  return { inputs, exampleShape: [FEATURES], labels, count, numClasses: CLASSES };
}

function buildModel(seed: number): Model {
  const random = createRandom(seed);
  const encoder = new MlpEncoder(
    { architecture: 'mlp', inputDim: FEATURES, hidden: [32], embeddingDim: EMBEDDING },
    random,
  );
  const head = new SharedHead(EMBEDDING, CLASSES, random);
  return new MatryoshkaModel(
    encoder,
    new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: EMBEDDING, dims: DIMS }),
  );
}

function snapshot(model: Model): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.variables()) out.set(name, Float32Array.from(v.dataSync()));
  return out;
}

function disposeModel(model: Model): void {
  for (const v of model.variables().values()) v.dispose();
}

function maxAbsDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  expect([...a.keys()]).toEqual([...b.keys()]);
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    expect(y.length).toBe(x.length);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  return worst;
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mrl-trainer-'));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const dataset = syntheticDataset(7);

function trainer(
  model: Model,
  options: Partial<TrainerOptions> & { optimizer: OptimizerConfig },
  data: ArrayDataset = dataset,
): Trainer<Batch> {
  return new Trainer(model, classificationBatches(data), { batchSize: 32, seed: 11, ...options });
}

describe('Trainer resume', () => {
  const optimizers: [string, OptimizerConfig][] = [
    ['SGD with momentum', { type: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 }],
    ['AdamW', { type: 'adamw', lr: 0.01, weightDecay: 0.05 }],
  ];
  for (const [label, optimizer] of optimizers) {
    it(`an interrupted and resumed run ends with the weights of an uninterrupted one (${label})`, async () => {
      const common = { optimizer, steps: 12, warmupSteps: 3, minLr: 1e-4, clipNorm: 5 };

      const dirA = await tempDir();
      const modelA = buildModel(3);
      const initial = snapshot(modelA);
      const resultA = await trainer(modelA, { ...common, checkpoint: { dir: dirA, every: 4 } }).fit();
      expect(resultA).toMatchObject({ steps: 12, stopped: false });
      expect((await listCheckpoints(dirA)).map((c) => c.step)).toEqual([4, 8, 12]);
      const finalA = snapshot(modelA);
      // Training moved the weights, so equality below is not equality of two untouched models.
      expect(maxAbsDiff(initial, finalA)).toBeGreaterThan(1e-3);

      const dirB = await tempDir();
      const controller = new AbortController();
      const modelB1 = buildModel(3);
      const eventsB1: TrainEvent[] = [];
      const resultB1 = await trainer(modelB1, {
        ...common,
        checkpoint: { dir: dirB, every: 4 },
        signal: controller.signal,
        onEvent: (e) => {
          eventsB1.push(e);
          if (e.type === 'step' && e.step === 6) controller.abort();
        },
      }).fit();
      expect(resultB1).toMatchObject({ steps: 6, stopped: true });
      expect(eventsB1.at(-1)).toEqual({ type: 'stopped', step: 6, reason: 'signal' });
      expect((await listCheckpoints(dirB)).map((c) => c.step)).toEqual([4, 6]);
      expect(maxAbsDiff(snapshot(modelB1), finalA)).toBeGreaterThan(1e-4);
      disposeModel(modelB1);

      const modelB2 = buildModel(3);
      const eventsB2: TrainEvent[] = [];
      const resultB2 = await trainer(modelB2, {
        ...common,
        checkpoint: { dir: dirB, every: 4 },
        resume: true,
        onEvent: (e) => eventsB2.push(e),
      }).fit();
      expect(resultB2).toMatchObject({ steps: 12, stopped: false });
      expect(eventsB2[0]).toEqual({
        type: 'start',
        totalSteps: 12,
        startStep: 6,
        resumedFrom: join(dirB, 'ckpt-00000006.safetensors'),
      });
      expect(eventsB2.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([
        7, 8, 9, 10, 11, 12,
      ]);
      expect(maxAbsDiff(snapshot(modelB2), finalA)).toBeLessThanOrEqual(1e-6);
      disposeModel(modelA);
      disposeModel(modelB2);
    });
  }
});

describe('Trainer memory', () => {
  it('keeps the tensor count flat across steps and checkpoints', async () => {
    const dir = await tempDir();
    const model = buildModel(5);
    const counts = new Map<number, number>();
    await trainer(model, {
      optimizer: { type: 'adamw', lr: 0.01 },
      steps: 52,
      clipNorm: 1,
      checkpoint: { dir, every: 10, keep: 1 },
      onEvent: (e) => {
        if (e.type === 'step' && (e.step === 5 || e.step === 50)) counts.set(e.step, tf.memory().numTensors);
      },
    }).fit();
    expect(counts.get(5)).toBeGreaterThan(0);
    expect(counts.get(50)).toBe(counts.get(5));
    disposeModel(model);
  });

  it('does not leak tensors when resuming from a checkpoint', async () => {
    const dir = await tempDir();
    const optimizer: OptimizerConfig = { type: 'sgd', lr: 0.05, momentum: 0.9 };
    const first = buildModel(5);
    await trainer(first, { optimizer, steps: 4, checkpoint: { dir, every: 2 } }).fit();
    disposeModel(first);
    const counts: number[] = [];
    for (let run = 0; run < 2; run++) {
      const model = buildModel(5);
      const t = trainer(model, {
        optimizer,
        steps: 6,
        resume: true,
        checkpoint: { dir: await tempDir(), every: 100 },
      });
      const loaded = await loadCheckpoint(join(dir, 'ckpt-00000004.safetensors'), model.variables(), t.optimizer);
      expect(loaded.step).toBe(4);
      t.optimizer.dispose();
      disposeModel(model);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[1]).toBe(counts[0]);
  });
});

describe('Trainer non-finite loss', () => {
  it('throws non-finite-loss naming the step when an input is NaN, and rolls back to the last checkpoint', async () => {
    const dir = await tempDir();
    const data = syntheticDataset(7);
    data.inputs = Float32Array.from(data.inputs);
    const model = buildModel(4);
    const t = trainer(model, { optimizer: { type: 'sgd', lr: 0.05 }, steps: 8, checkpoint: { dir, every: 2 } }, data);
    // Poison one row of the batch of the 6th step (index 5); the first epoch visits each row once.
    const row = t.indicesForStep(5)[0]!;
    data.inputs[row * FEATURES + 3] = Number.NaN;
    let thrown: unknown;
    try {
      await t.fit();
    } catch (e) {
      thrown = e;
    }
    expect(MrlError.is(thrown)).toBe(true);
    const error = thrown as MrlError;
    expect(error.kind).toBe('non-finite-loss');
    expect(error.message).toMatch(
      /^the loss became NaN at step 6; training stopped before updating the weights\. Rolled back to the last good checkpoint, step 4 \(loss \d\.\d{4}\): .*ckpt-00000004\.safetensors\.$/,
    );
    const weightsAtFailure = snapshot(model);
    for (const values of weightsAtFailure.values()) expect(values.every(Number.isFinite)).toBe(true);

    const saved = await listCheckpoints(dir);
    expect(saved.map((c) => c.step)).toEqual([2, 4]);
    const fresh = buildModel(4);
    const loaded = await loadCheckpoint(saved.at(-1)!.path, fresh.variables());
    expect(loaded.step).toBe(4);
    expect(Number(loaded.metadata.loss)).toBeGreaterThan(0);
    // The update of step 5 ran after checkpoint 4; the roll-back undid it.
    expect(maxAbsDiff(snapshot(fresh), weightsAtFailure)).toBe(0);
    disposeModel(model);
    disposeModel(fresh);
  });

  it('throws non-finite-loss when a huge learning rate blows the weights up', async () => {
    const model = buildModel(4);
    const before = tf.memory().numTensors;
    await expect(
      trainer(model, { optimizer: { type: 'sgd', lr: 1e30, momentum: 0 }, steps: 10 }).fit(),
    ).rejects.toSatisfy(
      (e: unknown) =>
        MrlError.is(e) &&
        e.kind === 'non-finite-loss' &&
        /^the loss became (NaN|-?Infinity) at step [2-9];/.test(e.message),
    );
    // The failed step frees its batch, the prefetched batch and the gradients.
    expect(tf.memory().numTensors).toBe(before);
    disposeModel(model);
  });
});

describe('Trainer determinism', () => {
  async function run(modelSeed: number, trainerSeed: number): Promise<Map<string, Float32Array>> {
    const model = buildModel(modelSeed);
    await trainer(model, { optimizer: { type: 'adamw', lr: 0.01 }, steps: 10, seed: trainerSeed }).fit();
    const out = snapshot(model);
    disposeModel(model);
    return out;
  }

  it('gives identical weights for the same seeds', async () => {
    expect(maxAbsDiff(await run(1, 21), await run(1, 21))).toBe(0);
  });

  it('gives different weights for a different trainer seed', async () => {
    expect(maxAbsDiff(await run(1, 21), await run(1, 22))).toBeGreaterThan(1e-4);
  });

  it('gives different weights for a different model seed', async () => {
    expect(maxAbsDiff(await run(1, 21), await run(2, 21))).toBeGreaterThan(1e-4);
  });

  it('visits every example once per epoch in a seeded order', () => {
    const model = buildModel(1);
    const a = trainer(model, { optimizer: { type: 'sgd', lr: 0.1 }, steps: 8 });
    const seen = Array.from({ length: a.stepsPerEpoch }, (_, s) => [...a.indicesForStep(s)]).flat();
    expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: dataset.count }, (_, i) => i));
    expect([...a.indicesForStep(0)]).not.toEqual([...a.indicesForStep(a.stepsPerEpoch)]);
    disposeModel(model);
  });
});

describe('Trainer validation', () => {
  let model: Model;
  beforeAll(() => {
    model = buildModel(0);
  });
  const sgd: OptimizerConfig = { type: 'sgd', lr: 0.1 };
  const build =
    (options: Partial<TrainerOptions>, data: ArrayDataset = dataset) =>
    () =>
      new Trainer(model, classificationBatches(data), {
        batchSize: 32,
        seed: 0,
        optimizer: sgd,
        steps: 10,
        ...options,
      });

  it('rejects a batchSize that is not a positive integer', () => {
    expectMrlError(build({ batchSize: 0 }), 'invalid-config', 'batchSize must be a positive integer, got 0.');
  });

  it('rejects a negative or non-finite lrScales entry, naming the variable', () => {
    expectMrlError(
      build({ lrScales: new Map([['encoder/dense0/w', -0.5]]) }),
      'invalid-config',
      "lrScales: 'encoder/dense0/w' has scale -0.5; scales must be finite and >= 0.",
    );
  });

  it('rejects empty training data', () => {
    const empty: ArrayDataset = {
      inputs: new Float32Array(0),
      exampleShape: [FEATURES],
      labels: new Int32Array(0),
      count: 0,
      numClasses: CLASSES,
    };
    expectMrlError(build({}, empty), 'invalid-argument', 'the training data is empty.');
  });

  it('rejects steps that are not a positive integer', () => {
    expectMrlError(build({ steps: 2.5 }), 'invalid-config', 'steps must be a positive integer, got 2.5.');
  });

  it('rejects epochs that are not > 0', () => {
    expectMrlError(
      () => new Trainer(model, classificationBatches(dataset), { batchSize: 32, seed: 0, optimizer: sgd, epochs: 0 }),
      'invalid-config',
      'epochs must be > 0, got 0.',
    );
  });

  it('rejects an lr that is not a finite number > 0', () => {
    expectMrlError(
      build({ optimizer: { type: 'sgd', lr: -1 } }),
      'invalid-config',
      'lr must be a finite number > 0, got -1.',
    );
  });

  it('rejects warmupSteps beyond the total steps', () => {
    expectMrlError(
      build({ warmupSteps: 11 }),
      'invalid-config',
      'warmupSteps must be an integer in [0, 10] (the total steps), got 11.',
    );
  });

  it('rejects a minLr above lr', () => {
    expectMrlError(build({ minLr: 0.2 }), 'invalid-config', 'minLr must be in [0, lr = 0.1], got 0.2.');
  });

  it('rejects a clipNorm that is not > 0', () => {
    expectMrlError(build({ clipNorm: 0 }), 'invalid-config', 'clipNorm must be > 0, got 0.');
  });

  it('rejects a checkpoint.every that is not a positive integer', () => {
    expectMrlError(
      build({ checkpoint: { dir: '/nonexistent', every: 0 } }),
      'invalid-config',
      'checkpoint.every must be a positive integer, got 0.',
    );
  });

  it('derives the total steps from epochs when steps is absent', () => {
    const t = new Trainer(model, classificationBatches(dataset), {
      batchSize: 100,
      seed: 0,
      optimizer: sgd,
      epochs: 2,
    });
    expect(t.stepsPerEpoch).toBe(3);
    expect(t.totalSteps).toBe(6);
  });
});

describe('clipByGlobalNorm', () => {
  const globalNorm = (grads: Map<string, tf.Tensor>): number =>
    Math.sqrt([...grads.values()].reduce((s, g) => s + [...g.dataSync()].reduce((a, x) => a + x * x, 0), 0));

  it('scales gradients above maxNorm down to a global norm of maxNorm, keeping their direction', async () => {
    const grads = new Map<string, tf.Tensor>([
      ['a', tf.tensor1d([3, 4])],
      ['b', tf.tensor2d([[12, 0]])],
    ]); // global norm 13
    const { grads: clipped, norm } = await clipByGlobalNorm(grads, 2);
    expect(norm).toBeCloseTo(13, 5);
    expect(globalNorm(clipped)).toBeCloseTo(2, 5);
    const ratio = 2 / 13;
    expect(Math.abs(clipped.get('a')!.dataSync()[0]! - 3 * ratio)).toBeLessThan(1e-5);
    expect(clipped.get('b')!.shape).toEqual([1, 2]);
    // The inputs are left as they were.
    expect([...grads.get('a')!.dataSync()]).toEqual([3, 4]);
    tf.dispose([...grads.values(), ...clipped.values()]);
  });

  it('leaves gradients below maxNorm unchanged', async () => {
    const grads = new Map<string, tf.Tensor>([
      ['a', tf.tensor1d([0.3, -0.4])],
      ['b', tf.tensor1d([1.2])],
    ]); // global norm 1.3
    const { grads: clipped, norm } = await clipByGlobalNorm(grads, 5);
    expect(norm).toBeCloseTo(1.3, 5);
    expect([...clipped.get('a')!.dataSync()]).toEqual([...grads.get('a')!.dataSync()]);
    expect([...clipped.get('b')!.dataSync()]).toEqual([...grads.get('b')!.dataSync()]);
    tf.dispose([...grads.values(), ...clipped.values()]);
  });

  it('reports the pre-clip norm in the step events and clips the update', async () => {
    const model = buildModel(9);
    const norms: number[] = [];
    await trainer(model, {
      optimizer: { type: 'sgd', lr: 0.01 },
      steps: 3,
      clipNorm: 1e-3,
      onEvent: (e) => {
        if (e.type === 'step' && e.gradNorm !== undefined) norms.push(e.gradNorm);
      },
    }).fit();
    expect(norms).toHaveLength(3);
    for (const n of norms) expect(n).toBeGreaterThan(1e-3);
    disposeModel(model);
  });
});

import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEmbeddings } from '../src/io/embeddings.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { Matryoshka2dLoss } from '../src/matryoshka-2d.js';
import { MatryoshkaLoss } from '../src/matryoshka-loss.js';
import { CoSENTObjective, DistillationObjective, type ScoredPairTarget } from '../src/pair-objectives.js';
import { createRandom } from '../src/rng.js';
import { expectClose } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';

// Golden values: fixtures/golden_objectives.py (PyTorch, float64, sentence-transformers' formulas).
interface Golden {
  n: number;
  d: number;
  dims: number[];
  weights: number[];
  scale: number;
  cosent: {
    a: number[];
    b: number[];
    labels: number[];
    losses: number[];
    total: number;
    gradA: number[];
    gradB: number[];
  };
  mse: {
    student: number[];
    teacher: number[];
    teacherDim: number;
    losses: number[];
    total: number;
    gradStudent: number[];
  };
  matryoshka2d: { layerWeights: number[]; layers: number[][]; others: number[]; total: number; grads: number[][] };
}
const golden = JSON.parse(
  readFileSync(new URL('./fixtures/golden_objectives.json', import.meta.url), 'utf8'),
) as Golden;
const { n, d, dims, weights } = golden;

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'mrl-objectives-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('CoSENTObjective under MatryoshkaLoss', () => {
  it('matches PyTorch per-dim losses, total and gradients of both sides', () => {
    const loss = new MatryoshkaLoss(new CoSENTObjective(golden.scale), { embeddingDim: d, dims, weights });
    const a = tf.tensor2d(golden.cosent.a, [n, d]);
    const b = tf.tensor2d(golden.cosent.b, [n, d]);
    const scores = tf.tensor1d(golden.cosent.labels);
    const value = loss.compute(a, { others: b, scores });
    expectClose(
      dims.map((m) => value.parts[`loss/${m}`]!.dataSync()[0]!),
      golden.cosent.losses,
      1e-5,
    );
    expectClose(value.total.dataSync(), [golden.cosent.total], 1e-5);
    const grads = tf.grads(
      (x: tf.Tensor, y: tf.Tensor) => loss.compute(x as tf.Tensor2D, { others: y as tf.Tensor2D, scores }).total,
    )([a, b]);
    expectClose(grads[0]!.dataSync(), golden.cosent.gradA, 1e-4);
    expectClose(grads[1]!.dataSync(), golden.cosent.gradB, 1e-4);
  });

  it('is exactly log(1) = 0 when no pair is ranked (all scores tied)', () => {
    const objective = new CoSENTObjective();
    const [l] = objective.prefixLosses(tf.randomNormal([4, 3], 0, 1, 'float32', 1) as tf.Tensor2D, [3], {
      others: tf.randomNormal([4, 3], 0, 1, 'float32', 2) as tf.Tensor2D,
      scores: tf.tensor1d([0.5, 0.5, 0.5, 0.5]),
    });
    expect(l!.dataSync()[0]).toBeCloseTo(0, 6);
  });

  it('names mismatched batch sizes and a bad scale', () => {
    const target: ScoredPairTarget = { others: tf.zeros([3, 4]) as tf.Tensor2D, scores: tf.zeros([2]) as tf.Tensor1D };
    expectMrlError(
      () => new CoSENTObjective().prefixLosses(tf.zeros([3, 4]) as tf.Tensor2D, [4], target),
      'invalid-argument',
      'CoSENT got 3 first sentences, 3 second sentences and 2 scores; they must pair up.',
    );
    expectMrlError(() => new CoSENTObjective(0), 'invalid-argument', 'CoSENT scale must be a positive number, got 0.');
  });
});

describe('DistillationObjective under MatryoshkaLoss', () => {
  it("matches PyTorch MSELoss against the teacher's own prefixes, with its gradient", () => {
    const loss = new MatryoshkaLoss(new DistillationObjective(), { embeddingDim: d, dims, weights });
    const student = tf.tensor2d(golden.mse.student, [n, d]);
    const teacher = tf.tensor2d(golden.mse.teacher, [n, golden.mse.teacherDim]);
    const value = loss.compute(student, { teacher });
    expectClose(
      dims.map((m) => value.parts[`loss/${m}`]!.dataSync()[0]!),
      golden.mse.losses,
      1e-5,
    );
    const grad = tf.grad((x: tf.Tensor) => loss.compute(x as tf.Tensor2D, { teacher }).total)(student);
    expectClose(grad.dataSync(), golden.mse.gradStudent, 1e-5);
  });

  it('names a narrow teacher and a row-count mismatch', () => {
    const objective = new DistillationObjective();
    expectMrlError(
      () =>
        objective.prefixLosses(tf.zeros([2, 8]) as tf.Tensor2D, [4, 8], { teacher: tf.zeros([2, 6]) as tf.Tensor2D }),
      'invalid-argument',
      'the teacher embeddings have 6 dims but the largest nesting dim is 8.',
    );
    expectMrlError(
      () => objective.prefixLosses(tf.zeros([2, 8]) as tf.Tensor2D, [8], { teacher: tf.zeros([3, 8]) as tf.Tensor2D }),
      'invalid-argument',
      'the batch has 2 student embeddings but 3 teacher embeddings; they must match row for row.',
    );
  });
});

describe('Matryoshka2dLoss', () => {
  const g = golden.matryoshka2d;
  const make = (options: { layersPerStep?: number } = {}) =>
    new Matryoshka2dLoss(new CoSENTObjective(golden.scale), {
      embeddingDim: d,
      dims,
      weights,
      layerWeights: g.layerWeights,
      ...options,
    });

  it('matches PyTorch over layers x dims, with gradients for every layer', () => {
    const loss = make();
    const layers = g.layers.map((z) => tf.tensor2d(z, [n, d]));
    const target = { others: tf.tensor2d(g.others, [n, d]), scores: tf.tensor1d(golden.cosent.labels) };
    const value = loss.compute(layers, target);
    expect(value.layers).toEqual([1, 2, 3]);
    expect(Object.keys(value.parts)).toContain('layer2/loss/4');
    expectClose(value.total.dataSync(), [g.total], 1e-5);
    const grads = tf.grads((...xs: tf.Tensor[]) => loss.compute(xs as tf.Tensor2D[], target).total)(layers);
    grads.forEach((grad, l) => expectClose(grad.dataSync(), g.grads[l]!, 1e-4));
  });

  it('layersPerStep trains the last layer and a random subset of the earlier ones', () => {
    const loss = make({ layersPerStep: 1 });
    const layers = g.layers.map((z) => tf.tensor2d(z, [n, d]));
    const target = { others: tf.tensor2d(g.others, [n, d]), scores: tf.tensor1d(golden.cosent.labels) };
    const seen = new Set<string>();
    const random = createRandom(3);
    for (let i = 0; i < 20; i++) {
      const used = loss.compute(layers, target, random).layers;
      expect(used.length).toBe(2);
      expect(used[1]).toBe(3);
      seen.add(used.join(','));
    }
    expect([...seen].sort()).toEqual(['1,3', '2,3']);
  });

  it('names a layer-weight count mismatch and bad options', () => {
    const loss = make();
    expectMrlError(
      () =>
        loss.compute([tf.zeros([2, d]) as tf.Tensor2D], {
          others: tf.zeros([2, d]) as tf.Tensor2D,
          scores: tf.zeros([2]) as tf.Tensor1D,
        }),
      'invalid-argument',
      'got 1 layer embeddings but 3 layerWeights.',
    );
    expectMrlError(
      () => new Matryoshka2dLoss(new CoSENTObjective(), { embeddingDim: d, layerWeights: [1, -1] }),
      'invalid-argument',
      'layerWeights[1] must be a positive number, got -1.',
    );
    expectMrlError(
      () => new Matryoshka2dLoss(new CoSENTObjective(), { embeddingDim: d, layersPerStep: 0 }),
      'invalid-argument',
      'layersPerStep must be a positive integer, got 0.',
    );
  });
});

describe('readEmbeddings (teacher embeddings)', () => {
  it('reads float32 / float64 .npy and a named safetensors tensor', async () => {
    const npy = (descr: string, values: number[], width: number): Uint8Array => {
      let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (2, 3), }`;
      header += `${' '.repeat(128 - 10 - header.length - 1)}\n`; // data 64-byte aligned, at 128
      const out = new Uint8Array(128 + values.length * width);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      const view = new DataView(out.buffer);
      view.setUint16(8, header.length, true);
      out.set(Buffer.from(header, 'latin1'), 10);
      values.forEach((v, i) =>
        width === 8 ? view.setFloat64(128 + i * 8, v, true) : view.setFloat32(128 + i * 4, v, true),
      );
      return out;
    };
    const values = [0.5, -1, 2, 3, 4.25, -6];
    await writeFile(join(dir, 'f4.npy'), npy('<f4', values, 4));
    await writeFile(join(dir, 'f8.npy'), npy('<f8', values, 8));
    for (const file of ['f4.npy', 'f8.npy']) {
      const m = await readEmbeddings(join(dir, file));
      expect([m.rows, m.dim]).toEqual([2, 3]);
      expect(Array.from(m.data)).toEqual(values);
    }
    await writeFile(
      join(dir, 't.safetensors'),
      encodeSafetensors(new Map([['teacher', { shape: [2, 3], data: Float32Array.from(values) }]])),
    );
    expect(Array.from((await readEmbeddings(join(dir, 't.safetensors'))).data)).toEqual(values);
  });

  it('refuses a NaN, naming the row', async () => {
    const data = Float32Array.from([1, 2, 3, 4, Number.NaN, 6]);
    const path = join(dir, 'nan.safetensors');
    await writeFile(path, encodeSafetensors(new Map([['embeddings', { shape: [2, 3], data }]])));
    await expect(readEmbeddings(path)).rejects.toThrow(`${path}: row 1 holds NaN at dim 1.`);
  });
});

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createRandom,
  ENCODER_REGISTRATION,
  initBackend,
  MatryoshkaLoss,
  Trainer,
  type EncoderRegistration,
} from '@mrl/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alignContainer, createDualEncoder, findRegistration } from '../src/di.js';
import { fitAlign, type AlignFitOptions } from '../src/fit.js';
import { loadAlignModel } from '../src/save.js';
import { ClipContrastiveObjective } from '../src/loss.js';
import { AlignModel, DualEncoder, type AlignBatch } from '../src/model.js';

let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'mrl-align-train-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The options of every run here: 8x8 images, a 16-dim embedding nested at 8, a tiny text tower. */
const tinyRun = (data: string, options: Partial<AlignFitOptions>): AlignFitOptions => ({
  data,
  imageSize: 8,
  batchSize: 8,
  embeddingDim: 16,
  dims: [8, 16],
  testFraction: 0.25,
  vocabSize: 60,
  cacheDir: '',
  textOverrides: { embeddingDim: 32, intermediateSize: 64 },
  ...options,
});

describe('DI', () => {
  it('resolves any registered vision and text tower, and registers the named dual encoders', () => {
    const container = alignContainer();
    const all = container.getAll<EncoderRegistration>(ENCODER_REGISTRATION);
    expect(all.filter((r) => r.modality === 'align').map((r) => r.name)).toEqual(['align-tiny', 'align-vit-micro']);
    const dual = findRegistration(container, 'align-tiny', 'align').create(
      { architecture: 'align-tiny', embeddingDim: 16, textOverrides: { vocabSize: 40 } },
      createRandom(0),
    );
    expect(dual).toBeInstanceOf(DualEncoder);
    expect(dual.embeddingDim).toBe(16);
    expect(() => findRegistration(container, 'resnet-huge', 'vision')).toThrow("unknown vision encoder 'resnet-huge'.");
    dual.dispose();
  });
});

describe('AlignModel', () => {
  it('trains a few steps: the loss drops and the tensor count stays flat', async () => {
    const n = 8;
    const encoder = createDualEncoder(
      {
        vision: 'resnet-tiny',
        text: 'bert-tiny',
        embeddingDim: 16,
        visionOverrides: { embeddingDim: 16 },
        textOverrides: {
          vocabSize: 40,
          embeddingDim: 32,
          numHeads: 2,
          numLayers: 1,
          intermediateSize: 64,
          maxPositions: 8,
          dropout: 0,
        },
      },
      createRandom(1),
    );
    const objective = new ClipContrastiveObjective();
    const model = new AlignModel(encoder, new MatryoshkaLoss(objective, { embeddingDim: 16, dims: [4, 8, 16] }));
    // Pair i: an 8x8 image whose colour and bright quadrant depend on i; caption tokens [5+i, 20+i%4].
    const pixels = new Float32Array(n * 8 * 8 * 3);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          const on = y < 4 === (i % 2 === 0) && x < 4 === i % 4 < 2;
          for (let c = 0; c < 3; c++) pixels[((i * 8 + y) * 8 + x) * 3 + c] = on ? (c === i % 3 ? 1 : -0.5) : -1;
        }
      }
    }
    const source = {
      size: n,
      batch: (indices: Int32Array): AlignBatch => {
        const rows = Array.from(indices);
        const images = tf.tensor4d(
          Float32Array.from(rows.flatMap((i) => Array.from(pixels.subarray(i * 192, (i + 1) * 192)))),
          [rows.length, 8, 8, 3],
        );
        const ids = tf.tensor2d(
          rows.flatMap((i) => [2, 5 + i, 20 + (i % 4), 3]),
          [rows.length, 4],
          'int32',
        );
        const attentionMask = tf.onesLike(ids) as tf.Tensor2D;
        return {
          images,
          tokens: { ids, attentionMask },
          size: rows.length,
          dispose: () => tf.dispose([images, ids, attentionMask]),
        };
      },
    };
    const losses: number[] = [];
    const tensors: number[] = [];
    const trainer = new Trainer(model, source, {
      steps: 25,
      batchSize: n,
      seed: 0,
      optimizer: { type: 'adamw', lr: 1e-2 },
      onEvent: (e) => {
        if (e.type === 'step') {
          losses.push(e.loss);
          tensors.push(tf.memory().numTensors);
        }
      },
    });
    await trainer.fit();
    const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(last).toBeLessThan(0.6 * first);
    // The last step has no prefetched next batch (3 tensors fewer); compare the one before.
    expect(tensors.at(-2)).toBe(tensors[2]);
    expect([...model.variables().keys()]).toContain('objective/logit_scale');
    encoder.dispose();
    objective.dispose();
  });
});

describe('fitAlign', () => {
  it('trains on a sidecar folder and prints recall per dim for both models', async () => {
    const data = join(dir, 'pairs');
    const colours: Record<string, [number, number, number]> = {
      red: [230, 20, 20],
      green: [20, 200, 20],
      blue: [20, 20, 230],
      black: [0, 0, 0],
    };
    const shapes = ['square', 'bar'];
    for (const [colour, rgb] of Object.entries(colours)) {
      await mkdir(join(data, colour), { recursive: true });
      for (let k = 0; k < 8; k++) {
        const shape = shapes[k % 2]!;
        const [w, h] = shape === 'square' ? [12, 12] : [14, 4 + k];
        await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
          .png()
          .toFile(join(data, colour, `${shape}${k}.png`));
        await writeFile(join(data, colour, `${shape}${k}.txt`), `a ${colour} ${shape} number ${k}`);
      }
    }
    const events: string[] = [];
    const lines: string[] = [];
    const runDir = join(dir, 'run');
    const report = await fitAlign(tinyRun(data, { steps: 3 }), {
      runDir,
      seed: 0,
      resume: false,
      log: (l) => lines.push(l),
      onEvent: (e, label) => events.push(`${label}:${e.type}`),
    });
    expect(events).toContain('mrl:done');
    expect(events).toContain('ff-16:done');
    expect(report.table).toMatch(/I->T R@1 +R@5 +R@10 +T->I R@1/);
    expect(report.table).toMatch(/\n +8 /);
    expect(report.table).toContain('Zero-shot over 4 folders');
    const metrics = JSON.parse(await readFile(join(runDir, 'metrics.json'), 'utf8')) as {
      dims: number[];
      mrl: { recall: unknown[] };
    };
    expect(metrics.dims).toEqual([8, 16]);
    expect(metrics.mrl.recall).toHaveLength(2);
    expect(lines.some((l) => l.startsWith('data: pairs,'))).toBe(true);
    // The MRL model is saved and loads back.
    const saved = await loadAlignModel(join(runDir, 'model'));
    expect(saved.dims).toEqual([8, 16]);
    expect(saved.encoder.embeddingDim).toBe(16);
    saved.encoder.dispose();
  });

  it('a resumed run whose training is complete says so instead of a NaN final loss', async () => {
    const lines: string[] = [];
    await fitAlign(
      // The pairs and the run folder of the test above.
      tinyRun(join(dir, 'pairs'), { steps: 3 }),
      { runDir: join(dir, 'run'), seed: 0, resume: true, log: (l) => lines.push(l) },
    );
    expect(lines.some((l) => l.startsWith('mrl: already trained (3 steps'))).toBe(true);
    expect(lines.some((l) => l.includes('NaN'))).toBe(false);
  });

  let baselines: Awaited<ReturnType<typeof fitAlign>> | undefined;

  it('trains the FF, SVD, truncation and untrained baselines into the same per-dim table', async () => {
    const events: string[] = [];
    const report = await fitAlign(
      // The pairs written by the first test.
      tinyRun(join(dir, 'pairs'), { steps: 2, compare: ['ff', 'svd', 'rand', 'untrained'] }),
      {
        runDir: join(dir, 'run-baselines'),
        seed: 0,
        resume: false,
        log: () => undefined,
        onEvent: (e, label) => events.push(`${label}:${e.type}`),
      },
    );
    // One model per dim; the 16-dim one is the model without MRL that SVD and truncation reuse.
    expect(events.filter((e) => e.endsWith(':done'))).toEqual(['mrl:done', 'ff-8:done', 'ff-16:done']);
    const table = report.runTable!;
    // Untrained trains nothing: the same three models.
    expect(table.series.map((s) => s.key)).toEqual(['mrl', 'ff', 'svd', 'trunc', 'untrained']);
    for (const s of table.series) {
      expect(s.rows.map((r) => r.dim)).toEqual([8, 16]);
      for (const r of s.rows) {
        expect(r.values.i2t10).toBeGreaterThanOrEqual(0);
        expect(r.values.i2t10).toBeLessThanOrEqual(1);
        // mAP@10 (one relevant item) is at most recall@10 and at least recall@1 / 1.
        expect(r.values.i2tMap10).toBeLessThanOrEqual(r.values.i2t10! + 1e-12);
        expect(r.values.i2tMap10).toBeGreaterThanOrEqual(r.values.i2t1! - 1e-12);
      }
    }
    // FF at d and truncation at d are the same model scored at its full width.
    const at16 = (key: string) => table.series.find((s) => s.key === key)!.rows[1]!.values;
    expect(at16('ff')).toEqual(at16('trunc'));
    expect(report.table).toContain('FF I->T R@10');
    expect(report.table).toContain('SVD I->T R@10');
    expect(report.table).toContain('Untrained I->T R@10');
    expect(Object.keys(report.metrics)).toContain('untrained');
    baselines = report;
    await expect(
      fitAlign({ compare: ['pca' as 'svd'] }, { runDir: dir, seed: 0, resume: false, log: () => undefined }),
    ).rejects.toThrow("unknown baseline 'pca'.");
  });

  it("gallery 'all' ranks the test pairs among the whole collection, for every method", async () => {
    const report = await fitAlign(
      tinyRun(join(dir, 'pairs'), { steps: 2, compare: ['ff', 'svd', 'rand', 'untrained'], gallery: 'all' }),
      { runDir: join(dir, 'run-gallery'), seed: 0, resume: false, log: () => undefined },
    );
    const metrics = report.metrics as { trainCount: number; testCount: number; candidates: number; gallery: string };
    // 32 pairs written by the first test: every one of them is a candidate, the test pairs the queries.
    expect(metrics.trainCount + metrics.testCount).toBe(32);
    expect(metrics.candidates).toBe(32);
    expect(metrics.gallery).toBe('all');
    expect(report.runTable!.task).toContain(
      `${metrics.testCount} test pairs as queries over the whole collection (32 pairs)`,
    );
    expect(report.runTable!.references![0]!.values.i2t1).toBeCloseTo(1 / 32, 12);
    expect(report.table).toContain(`Chance: R@1 ${(100 / 32).toFixed(2)}`);
    // The same seed trains the same models as the test-split run above; more candidates can only
    // push a pair down, so no score rises, and at least one falls.
    const before = baselines!.runTable!;
    let fell = 0;
    for (const series of report.runTable!.series) {
      const old = before.series.find((s) => s.key === series.key)!;
      for (const [i, row] of series.rows.entries()) {
        for (const key of ['i2t1', 'i2t10', 't2i1', 't2i10', 'i2tMap10', 't2iMap10']) {
          expect(row.values[key]).toBeLessThanOrEqual(old.rows[i]!.values[key]! + 1e-12);
          if (row.values[key]! < old.rows[i]!.values[key]! - 1e-12) fell++;
        }
      }
    }
    expect(fell).toBeGreaterThan(0);
    await expect(
      fitAlign({ gallery: 'every' as 'all' }, { runDir: dir, seed: 0, resume: false, log: () => undefined }),
    ).rejects.toThrow('gallery "every" is not one of test, all.');
  });
});

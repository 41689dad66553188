import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, initBackend, type DimRow } from '@mrl/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { corruptImages, parseCorruptions } from '../src/eval/corruptions.js';
import { fitPca, projectPca, symmetricEigen } from '../src/eval/pca.js';
import { fitVision, type VisionFitOptions } from '../src/fit.js';
import { expectClose, FASHION_MNIST_DIR } from './helpers.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('PCA for the SVD baseline', () => {
  it('diagonalises a symmetric matrix (Jacobi)', () => {
    const a = Float64Array.from([4, 1, 2, 1, 3, 0, 2, 0, 5]);
    const { values, vectors } = symmetricEigen(a, 3);
    for (let k = 0; k < 3; k++) {
      const v = [0, 1, 2].map((i) => vectors[i * 3 + k]!);
      const av = [0, 1, 2].map((i) => a[i * 3]! * v[0]! + a[i * 3 + 1]! * v[1]! + a[i * 3 + 2]! * v[2]!);
      expectClose(
        av,
        v.map((x) => x * values[k]!),
        1e-9,
      );
    }
    expect([...values].reduce((s, x) => s + x, 0)).toBeCloseTo(12, 10); // the trace
  });

  it('finds the direction of largest variance first', () => {
    const random = createRandom(1);
    const rows = 500;
    const data = new Float32Array(rows * 3);
    for (let r = 0; r < rows; r++) {
      const t = random() * 2 - 1;
      // Mostly along (1, 1, 0) / sqrt 2, a little noise elsewhere.
      data.set([5 * t + 0.1 * random(), 5 * t + 0.1 * random(), 0.3 * random()], r * 3);
    }
    const pca = fitPca({ data, rows, dim: 3 });
    expect(Math.abs(pca.directions[0]!)).toBeCloseTo(Math.SQRT1_2, 2);
    expect(Math.abs(pca.directions[3]!)).toBeCloseTo(Math.SQRT1_2, 2);
    expect(pca.variances[0]).toBeGreaterThan(100 * pca.variances[1]!);
    const projected = projectPca(pca, { data, rows, dim: 3 });
    let second = 0;
    for (let r = 0; r < rows; r++) second += projected.data[r * 3 + 1]! ** 2;
    expect(second / rows).toBeLessThan(0.02);
  });
});

describe('corruptions', () => {
  const images = Float32Array.from({ length: 2 * 8 * 8 }, (_, i) => (i % 8) / 8);
  const shape = [2, 8, 8, 1] as const;

  it('are reproducible for a seed and stay in [0, 1]', () => {
    const a = corruptImages(images, shape, { name: 'gaussian-noise', severity: 3 }, 1);
    expect(corruptImages(images, shape, { name: 'gaussian-noise', severity: 3 }, 1)).toEqual(a);
    expect(corruptImages(images, shape, { name: 'gaussian-noise', severity: 3 }, 2)).not.toEqual(a);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a)).toBeLessThanOrEqual(1);
  });

  it('blur keeps the mean and contrast shrinks the spread', () => {
    const blurred = corruptImages(images, shape, { name: 'gaussian-blur', severity: 5 });
    const mean = (xs: Float32Array): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean(blurred)).toBeCloseTo(mean(images), 1);
    const flat = corruptImages(images, shape, { name: 'contrast', severity: 5 });
    expect(Math.max(...flat) - Math.min(...flat)).toBeCloseTo(0.1 * (Math.max(...images) - Math.min(...images)), 5);
  });

  it('parses specs and names a bad one', () => {
    expect(parseCorruptions('gaussian-noise:5,contrast')).toEqual([
      { name: 'gaussian-noise', severity: 5 },
      { name: 'contrast', severity: 3 },
    ]);
    expect(() => parseCorruptions('fog')).toThrow("unknown corruption 'fog' in 'fog'.");
    expect(() => parseCorruptions('contrast:9')).toThrow(
      "corruption severity must be an integer 1-5, got '9' in 'contrast:9'.",
    );
  });
});

describe('fitVision', () => {
  /** A few steps on a few hundred images: enough to exercise every model and column. */
  const tinyRun = {
    data: 'fashion-mnist',
    dataDir: FASHION_MNIST_DIR,
    embeddingDim: 8,
    minDim: 4,
    head: 'separate',
    epochs: 1,
    batchSize: 64,
    optimizer: { type: 'adamw', lr: 0.01 },
    testLimit: 100,
  } as const;

  it('trains MRL and the FF, SVD and random-feature baselines and prints their columns', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'mrl-fit-'));
    const report = await fitVision(
      {
        ...tinyRun,
        model: 'resnet-tiny',
        trainLimit: 192,
        compare: ['ff', 'svd', 'rand'],
        robustness: [{ name: 'contrast', severity: 2 }],
      },
      { runDir, seed: 0, resume: false, log: () => undefined },
    );
    const header = report.table.split('\n')[0]!;
    for (const column of [
      'MRL top-1 %',
      'MRL 1-NN %',
      'FF top-1 %',
      'MRL-FF',
      'SVD top-1 %',
      'SVD 1-NN %',
      'Rand top-1 %',
      'Rand 1-NN %',
    ])
      expect(header).toContain(column);
    expect(report.table).toContain('contrast:2');
    expect(report.metrics.dims as number[]).toEqual([4, 8]);
    expect(Object.keys(report.metrics.svd as object)).toEqual(['4', '8']);
  });

  it('scores random features: the encoder MRL starts from, whatever the training settings', async () => {
    const options = {
      ...tinyRun,
      model: 'mlp',
      trainLimit: 256,
      compare: ['untrained'],
      robustness: false,
      saveModel: false,
    } as const;
    type Metrics = { mrl: DimRow[]; untrained: Record<string, DimRow> };
    const run = async (optimizer: VisionFitOptions['optimizer'], headLrScale = 1) =>
      fitVision(
        { ...options, optimizer, headLrScale },
        { runDir: await mkdtemp(join(tmpdir(), 'mrl-fit-untrained-')), seed: 0, resume: false, log: () => undefined },
      );
    // SGD with a negligible step leaves the MLP (no batch norm, no dropout) at its initialisation,
    // so MRL's prefixes are the untrained encoder's: same 1-NN and mAP@10 at every dim.
    const frozenReport = await run({ type: 'sgd', lr: 1e-30 });
    const frozen = frozenReport.metrics as Metrics;
    const trained = (await run({ type: 'adamw', lr: 0.01 })).metrics as Metrics;
    for (const row of frozen.mrl) {
      expect(frozen.untrained[row.dim]!.nnTop1).toBe(row.nnTop1);
      expect(frozen.untrained[row.dim]!.map10).toBe(row.map10);
      // The untrained encoder does not depend on the training settings.
      expect(trained.untrained[row.dim]!.nnTop1).toBe(row.nnTop1);
      expect(trained.untrained[row.dim]!.map10).toBe(row.map10);
    }
    // ... while training moves MRL's embedding.
    expect(trained.mrl.map((r) => r.map10)).not.toEqual(frozen.mrl.map((r) => r.map10));
    // The probes on the untrained features are heads: --head-lr-scale reaches them, not the features.
    const scaled = (await run({ type: 'adamw', lr: 0.01 }, 10)).metrics as Metrics;
    const probeTop1 = (m: Metrics) => Object.values(m.untrained).map((r) => r.top1);
    expect(probeTop1(scaled)).not.toEqual(probeTop1(trained));
    for (const row of frozen.mrl) expect(scaled.untrained[row.dim]!.nnTop1).toBe(row.nnTop1);
    expect(frozenReport.table.split('\n')[0]).toContain('Untrained top-1 %');
    expect(frozenReport.runTable!.series.map((s) => s.label)).toEqual(['MRL', 'Untrained']);
    for (const row of Object.values(frozen.untrained)) expect(row.top1).toBeGreaterThanOrEqual(0);
  });

  it('splits training over calls with trainOnly; a resume call then only evaluates, as one run would', async () => {
    const options = {
      ...tinyRun,
      model: 'mlp',
      trainLimit: 256,
      compare: ['ff', 'svd'],
      robustness: false,
      saveModel: false,
    } as const;
    const whole = await fitVision(options, {
      runDir: await mkdtemp(join(tmpdir(), 'mrl-fit-whole-')),
      seed: 0,
      resume: false,
      log: () => undefined,
    });

    const runDir = await mkdtemp(join(tmpdir(), 'mrl-fit-split-'));
    const first = await fitVision(
      { ...options, trainOnly: ['mrl', 'ff-4'] },
      { runDir, seed: 0, resume: false, log: () => undefined },
    );
    expect(first.table).toBe('');
    expect(existsSync(join(runDir, 'checkpoints', 'mrl', 'ckpt-00000004.safetensors'))).toBe(true);
    expect(existsSync(join(runDir, 'checkpoints', 'ff-8'))).toBe(false);
    await fitVision({ ...options, trainOnly: ['ff-8'] }, { runDir, seed: 0, resume: false, log: () => undefined });
    const steps: string[] = [];
    const merged = await fitVision(options, {
      runDir,
      seed: 0,
      resume: true,
      log: () => undefined,
      onEvent: (event, label) => event.type === 'step' && steps.push(label),
    });
    expect(steps.filter((label) => label === 'mrl' || label.startsWith('ff-'))).toEqual([]); // every model came from its final checkpoint
    expect(merged.table).toBe(whole.table);

    await expect(
      fitVision({ ...options, trainOnly: ['ff-12'] }, { runDir, seed: 0, resume: false, log: () => undefined }),
    ).rejects.toThrow("trainOnly names 'ff-12', which this run does not train.");
  });

  it('names unknown models and baselines', async () => {
    const base = {
      data: 'fashion-mnist',
      embeddingDim: 8,
      head: 'separate',
      epochs: 1,
      batchSize: 8,
      optimizer: { type: 'sgd', lr: 0.1 },
    } as const;
    const context = { runDir: tmpdir(), seed: 0, resume: false, log: () => undefined };
    await expect(fitVision({ ...base, model: 'resnet-huge', compare: [] }, context)).rejects.toThrow(
      "unknown vision model 'resnet-huge'.",
    );
    await expect(fitVision({ ...base, model: 'mlp', compare: ['pca' as 'svd'] }, context)).rejects.toThrow(
      "unknown baseline 'pca'.",
    );
  });
});

import { describe, expect, it } from 'vitest';
import { checkBaselines, checkTrainOnly, runPlan } from '../src/experiment/plan.js';
import { trainerOptions } from '../src/experiment/settings.js';

const context = { runDir: '/runs/r', seed: 7, resume: true, log: () => undefined };
const defaults = { epochs: 4, batchSize: 128, lr: 3e-3, weightDecay: 0.01, clipNorm: 2, checkpointEvery: 1000 };

describe('runPlan', () => {
  it('trains mrl, an FF model per dim, and the model without MRL once for SVD and truncation', () => {
    expect(runPlan([8, 16, 32], []).labels).toEqual(['mrl']);
    expect(runPlan([8, 16, 32], ['svd', 'rand'])).toEqual({ labels: ['mrl', 'ff-32'], ffDims: [], full: true });
    expect(runPlan([8, 16, 32], ['ff', 'svd']).labels).toEqual(['mrl', 'ff-8', 'ff-16', 'ff-32']);
    // FF at a subset of dims still trains ff-32 when SVD needs it, and only once.
    expect(runPlan([8, 16, 32], ['ff', 'rand'], [8])).toEqual({
      labels: ['mrl', 'ff-8', 'ff-32'],
      ffDims: [8],
      full: true,
    });
    // Random features train nothing: the untrained encoder adds no model to the plan.
    expect(runPlan([8, 16, 32], ['untrained'])).toEqual({ labels: ['mrl'], ffDims: [], full: false });
  });

  it('trains nothing more for random features (untrained)', () => {
    expect(runPlan([8, 16, 32], ['untrained'])).toEqual({ labels: ['mrl'], ffDims: [], full: false });
    expect(runPlan([8, 16, 32], ['rand', 'untrained']).labels).toEqual(['mrl', 'ff-32']);
    expect(() => checkBaselines(['ff', 'svd', 'rand', 'untrained'])).not.toThrow();
  });

  it('names an unknown baseline and a model the run does not train', () => {
    expect(() => checkBaselines(['ff', 'pca'])).toThrow("unknown baseline 'pca'.");
    expect(() => checkBaselines(['random'])).toThrow(
      expect.objectContaining({ fix: 'Known baselines: ff, svd, rand, untrained.' }),
    );
    expect(() => checkTrainOnly(['mrl', 'ff-12'], [8, 16])).toThrow(
      "trainOnly names 'ff-12', which this run does not train.",
    );
  });
});

describe('trainerOptions', () => {
  it('fills what the settings leave out from the modality defaults, one checkpoint folder per model', () => {
    const o = trainerOptions({}, defaults, context, 'ff-16');
    expect(o).toMatchObject({
      epochs: 4,
      batchSize: 128,
      seed: 7,
      optimizer: { type: 'adamw', lr: 3e-3, weightDecay: 0.01 },
      clipNorm: 2,
      resume: true,
      checkpoint: { dir: '/runs/r/checkpoints/ff-16', every: 1000 },
    });
    expect(o).not.toHaveProperty('warmupSteps');
  });

  it('takes every setting given, steps over epochs and a whole optimizer over lr', () => {
    const o = trainerOptions(
      { steps: 50, epochs: 9, batchSize: 8, lr: 0.5, weightDecay: 0, warmupSteps: 3, clipNorm: 1, checkpointEvery: 5 },
      defaults,
      context,
      'mrl',
      '/runs/r/checkpoints',
    );
    expect(o).toMatchObject({ steps: 50, batchSize: 8, optimizer: { type: 'adamw', lr: 0.5, weightDecay: 0 } });
    expect(o).not.toHaveProperty('epochs');
    expect(o.checkpoint).toEqual({ dir: '/runs/r/checkpoints', every: 5 });
    const sgd = trainerOptions({ optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, lr: 5 }, defaults, context, 'mrl');
    expect(sgd.optimizer).toEqual({ type: 'sgd', lr: 0.1, momentum: 0.9 });
  });
});

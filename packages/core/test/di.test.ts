import * as tf from '@tensorflow/tfjs';
import { Container } from 'inversify';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  coreModule,
  ENCODER_REGISTRATION,
  OBJECTIVE_REGISTRATION,
  type EncoderRegistration,
  type ObjectiveRegistration,
} from '../src/di.js';
import { createRandom } from '../src/rng.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('coreModule', () => {
  it('registers the MLP encoder and builds it with the given d', async () => {
    const container = new Container();
    await container.load(coreModule);
    const [mlp] = container.getAll<EncoderRegistration>(ENCODER_REGISTRATION);
    expect(mlp?.name).toBe('mlp');
    const encoder = mlp!.create({ ...mlp!.defaults, embeddingDim: 12 }, createRandom(0));
    const z = encoder.encode(tf.zeros([3, 784]), false);
    expect(z.shape).toEqual([3, 12]);
  });

  it('registers the MRL and MRL-E classification objectives, each giving one loss per dim', async () => {
    const container = new Container();
    await container.load(coreModule);
    const objectives = container.getAll<ObjectiveRegistration>(OBJECTIVE_REGISTRATION);
    expect(objectives.map((o) => o.name)).toEqual(['classification', 'classification-shared']);
    const z = tf.randomNormal([4, 16], 0, 1, 'float32', 3) as tf.Tensor2D;
    const labels = tf.tensor1d([0, 1, 2, 1], 'int32');
    for (const registration of objectives) {
      const objective = registration.create({ embeddingDim: 16, numClasses: 3, dims: [8, 16] }, createRandom(1));
      const losses = objective.prefixLosses(z, [8, 16], { labels });
      expect(losses).toHaveLength(2);
      // Untrained heads on 3 classes: each loss is a finite cross-entropy near ln 3.
      for (const l of losses) expect(Math.abs(l.dataSync()[0]! - Math.log(3))).toBeLessThan(2);
    }
    const separate = objectives[0]!.create({ embeddingDim: 16, numClasses: 3, dims: [8, 16] }, createRandom(1));
    const shared = objectives[1]!.create({ embeddingDim: 16, numClasses: 3, dims: [8, 16] }, createRandom(1));
    expect([...separate.variables().keys()]).toEqual(['w8', 'b8', 'w16', 'b16']);
    expect([...shared.variables().keys()]).toEqual(['w', 'b']);
  });
});

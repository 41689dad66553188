import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AdaptorWeights } from '../src/adaptor/adaptor.js';
import { compareByDim, selectAdaptor, shorteningMethods } from '../src/adaptor/compare.js';
import { RankingObjective } from '../src/adaptor/losses.js';
import type { Rows } from '../src/adaptor/rows.js';
import { type AdaptorBatch, adaptorBatches, averageSnapshots, fitAdaptor } from '../src/adaptor/train.js';
import { createRandom, type Random } from '../src/rng.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';
import { hostRanking } from './helpers/ranking.js';

function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Classes that differ only along two low-variance directions, under four high-variance noise
 * directions: the top principal components are noise, so PCA and truncation lose the classes at
 * small prefixes, and only labels can say which directions matter.
 */
function hiddenClassData(rows: number, d: number, classes: number, seed: number): { rows: Rows; labels: Int32Array } {
  const fixed = createRandom(100); // the same class centres for every sample
  const centres = Array.from({ length: classes }, () => [2 * gaussian(fixed), 2 * gaussian(fixed)]);
  const random = createRandom(seed);
  const data = new Float32Array(rows * d);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let j = 0; j < d; j++) {
      // dims 0-3: noise of sd 3; the class lives in dims d-2 and d-1 (centres sd 2, noise 0.15)
      const noise = j < 4 ? 3 * gaussian(random) : 0.1 * gaussian(random);
      const signal = j >= d - 2 ? centres[c]![j - (d - 2)]! : 0;
      data[i * d + j] = noise + signal + (j >= d - 2 ? 0.15 * gaussian(random) : 0);
    }
  }
  return { rows: { data, rows, dim: d }, labels };
}

describe('Matryoshka-Adaptor with class labels', () => {
  beforeAll(async () => {
    await initBackend('wasm', { kernels: 'wasm' });
  });

  it('ranking loss with other positives masked out matches a host computation, and equals the plain loss with no mask', () => {
    const n = 6;
    const d = 5;
    const dims = [2, 5];
    const scale = 20;
    const q = randomArray(n * d, 3);
    const doc = randomArray(n * d, 4);
    const labels = [0, 1, 0, 2, 1, 0];
    const mask = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j && labels[i] === labels[j]) mask[i * n + j] = 1;
    const objective = new RankingObjective(scale);
    const [masked, plain, zeroMasked] = tf.tidy(() => {
      const qt = tf.tensor2d(q, [n, d]);
      const dt = tf.tensor2d(doc, [n, d]);
      return [
        objective.prefixLosses(qt, dims, { documents: dt, otherPositives: tf.tensor2d(mask, [n, n]) }),
        objective.prefixLosses(qt, dims, { documents: dt }),
        objective.prefixLosses(qt, dims, { documents: dt, otherPositives: tf.zeros([n, n]) }),
      ].map((losses) => tf.stack(losses));
    }) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const expected = dims.map((m) => hostRanking(q, doc, n, n, d, m, scale, mask));
    const unmasked = dims.map((m) => hostRanking(q, doc, n, n, d, m, scale, new Float32Array(n * n)));
    expectClose(masked.dataSync(), expected, 1e-4);
    expectClose(plain.dataSync(), unmasked, 1e-4);
    expectClose(zeroMasked.dataSync(), unmasked, 1e-5);
    // Masking same-class documents removes negatives: the loss can only fall.
    for (let j = 0; j < dims.length; j++) expect(expected[j]!).toBeLessThan(unmasked[j]!);
    tf.dispose([masked, plain, zeroMasked]);
  });

  it('draws, for every batch row, another row of its class as its document, and masks the rest of its class', () => {
    const d = 3;
    const labels = Int32Array.from([0, 1, 0, 2, 1, 0, 3, 1]); // class 2 and 3 have one row each
    const data = new Float32Array(labels.length * d);
    for (let i = 0; i < labels.length; i++) data[i * d] = i; // column 0 names the row
    const corpus = { data, rows: labels.length, dim: d };
    const batches = adaptorBatches(corpus, undefined, undefined, { labels, seed: 5 });
    const drawn = [0, 2, 3, 4, 6, 7, 1, 5];
    for (let trial = 0; trial < 4; trial++) {
      const batch = batches.batch(Int32Array.from(drawn)) as AdaptorBatch & { otherPositives: tf.Tensor2D };
      expect(batch.queries).toBe(batch.embeddings);
      const docRows = Array.from(tf.tidy(() => tf.slice(batch.documents!, [0, 0], [-1, 1])).dataSync() as Float32Array);
      drawn.forEach((row, i) => {
        const partner = docRows[i]!;
        expect(labels[partner]).toBe(labels[row]);
        // Another row of the class, unless the row is its class' only member.
        if (labels.filter((l) => l === labels[row]).length > 1) expect(partner).not.toBe(row);
        else expect(partner).toBe(row);
      });
      const mask = batch.otherPositives.arraySync();
      drawn.forEach((a, i) =>
        drawn.forEach((b, j) => expect(mask[i]![j]).toBe(i !== j && labels[a] === labels[b] ? 1 : 0)),
      );
      batch.dispose();
    }
  });

  it('with labels, moves low-variance class directions into the first dims, where PCA and the unsupervised adaptor keep noise', async () => {
    const d = 12;
    const dims = [2, 4, d];
    const train = hiddenClassData(600, d, 6, 1);
    const test = hiddenClassData(300, d, 6, 2);
    const common = {
      corpus: train.rows,
      dims,
      epochs: 40,
      batchSize: 200,
      lr: 1e-2,
      rotation: 'pca' as const,
      seed: 0,
    };
    const tensorsBefore = tf.memory().numTensors;
    const supervised = await fitAdaptor({ ...common, labels: train.labels });
    const unsupervised = await fitAdaptor(common);
    const weights = { labels: await supervised.adaptor.weights(), plain: await unsupervised.adaptor.weights() };
    supervised.adaptor.dispose();
    unsupervised.adaptor.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(supervised.fit.lastParts['ranking/loss/2']).toBeGreaterThan(0);
    const methods = shorteningMethods(train.rows, weights.plain);
    methods.labels = shorteningMethods(train.rows, weights.labels).adaptor!;
    const results = await compareByDim({
      database: train.rows,
      databaseLabels: train.labels,
      queries: test.rows,
      queryLabels: test.labels,
      dims,
      transforms: methods,
    });
    const at = (method: string, m: number): number =>
      results.find((x) => x.method === method)!.metrics.find((x) => x.dim === m)!.nnTop1;
    const table = JSON.stringify(results.map((r) => [r.method, r.metrics.map((x) => x.nnTop1)]));
    // 6 classes: chance is ~17 %. The class directions carry ~1/4 of the variance, all in the last dims.
    expect(at('pca', 2), table).toBeLessThan(0.4);
    expect(at('adaptor', 2), table).toBeLessThan(0.5);
    expect(at('labels', 2), table).toBeGreaterThan(at('pca', 2) + 0.3);
    expect(at('labels', 2), table).toBeGreaterThan(at('adaptor', 2) + 0.3);
  });

  it('keeps snapshots of the weights and selects the one that is best on validation rows', async () => {
    const { rows, labels } = hiddenClassData(300, 6, 3, 4);
    const { adaptor, snapshots } = await fitAdaptor({
      corpus: rows,
      dims: [2, 6],
      steps: 12,
      batchSize: 100,
      snapshotEvery: 5,
    });
    expect(snapshots.map((s) => s.step)).toEqual([5, 10, 12]);
    const final = await adaptor.weights();
    adaptor.dispose();
    for (const key of ['w1', 'b1', 'w2', 'b2'] as const) expect(snapshots.at(-1)!.weights[key]).toEqual(final[key]);
    expect(snapshots[0]!.weights.w2).not.toEqual(final.w2);

    // Two classes on column 0 (-1 / +1), noise on column 1. The identity keeps them apart at dim 1;
    // `collapse` maps column 0 to 0 for both (f0 = e0 - relu(e0) + relu(-e0)), so 1-NN there is chance.
    const random = createRandom(9);
    const make = (n: number): { rows: Rows; labels: Int32Array } => {
      const data = new Float32Array(n * 2);
      const l = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        l[i] = i % 2;
        data[i * 2] = i % 2 === 0 ? -1 : 1;
        data[i * 2 + 1] = gaussian(random);
      }
      return { rows: { data, rows: n, dim: 2 }, labels: l };
    };
    const config = { dim: 2, hidden: 2, dims: [1, 2] };
    const identity: AdaptorWeights = {
      config,
      w1: new Float32Array(4),
      b1: new Float32Array(2),
      w2: new Float32Array(4),
      b2: new Float32Array(2),
    };
    const collapse: AdaptorWeights = {
      ...identity,
      w1: Float32Array.from([1, -1, 0, 0]),
      w2: Float32Array.from([-1, 0, 1, 0]),
    };
    const database = make(200);
    const queries = make(100);
    const validation = {
      database: database.rows,
      databaseLabels: database.labels,
      queries: queries.rows,
      queryLabels: queries.labels,
      dims: [1],
    };
    const { best, scores } = await selectAdaptor(
      [
        { name: 'collapse', weights: collapse },
        { name: 'identity', weights: identity },
      ],
      validation,
    );
    expect(best.name).toBe('identity');
    expect(scores[1]).toBe(1);
    expect(scores[0]).toBeLessThan(0.8);
    // Ties go to the first candidate.
    const tie = await selectAdaptor(
      [
        { name: 'a', weights: identity },
        { name: 'b', weights: identity },
      ],
      validation,
    );
    expect(tie.best.name).toBe('a');
  });

  it("averages a fit's snapshots from a given step, element by element", async () => {
    const { rows } = hiddenClassData(300, 6, 3, 5);
    const { adaptor, snapshots } = await fitAdaptor({
      corpus: rows,
      dims: [2, 6],
      steps: 12,
      batchSize: 100,
      snapshotEvery: 4,
      rotation: 'pca',
      center: true,
    });
    const final = await adaptor.weights();
    adaptor.dispose();
    expect(snapshots.map((s) => s.step)).toEqual([4, 8, 12]);
    // From the last step alone: that step's weights (and the fit's final ones).
    const last = averageSnapshots(snapshots, 12);
    for (const key of ['w1', 'b1', 'w2', 'b2'] as const) expect(last[key]).toEqual(final[key]);
    expect(last.rotation).toEqual(final.rotation);
    expect(last.mean).toEqual(final.mean);
    // From step 5: the mean of steps 8 and 12; from 0: of all three, each value against the host's sum.
    for (const [from, picked] of [
      [5, snapshots.slice(1)],
      [0, snapshots],
    ] as const) {
      const averaged = averageSnapshots(snapshots, from);
      expect(averaged.config).toEqual(final.config);
      for (const key of ['w1', 'b1', 'w2', 'b2'] as const) {
        const want = Array.from(
          final[key],
          (_, i) => picked.reduce((sum, s) => sum + s.weights[key][i]!, 0) / picked.length,
        );
        expectClose(Array.from(averaged[key]), want, 1e-6);
      }
      expect(averaged.w2).not.toEqual(final.w2);
    }
    expectMrlError(
      () => averageSnapshots(snapshots, 13),
      'invalid-argument',
      'no adaptor snapshot at step 13 or later (3 snapshots, the last at step 12).',
    );
    const other = { step: 16, weights: { ...final, config: { ...final.config, hidden: 7 } } };
    expectMrlError(
      () => averageSnapshots([...snapshots, other], 8),
      'invalid-argument',
      'the adaptor snapshot of step 16 does not match the first averaged one (another config).',
    );
  });

  it('refuses bad label and snapshot options with messages naming the value', async () => {
    const corpus = { data: randomArray(40, 1), rows: 10, dim: 4 };
    const pairs = { queries: corpus, documents: corpus };
    await expect(fitAdaptor({ corpus, dims: [2, 4], labels: new Int32Array(10), pairs })).rejects.toThrow(
      'the adaptor got both (query, document) pairs and class labels for the ranking term.',
    );
    await expect(fitAdaptor({ corpus, dims: [2, 4], labels: new Int32Array(9) })).rejects.toThrow(
      'the corpus has 10 embeddings but 9 labels.',
    );
    await expect(fitAdaptor({ corpus, dims: [2, 4], snapshotEvery: 0 })).rejects.toThrow(
      'snapshotEvery must be a positive integer, got 0.',
    );
    await expect(selectAdaptor([], { ...pairsValidation(corpus), dims: [2] })).rejects.toThrow(
      'selectAdaptor got no candidates.',
    );
    expectMrlError(
      () =>
        tf.tidy(() =>
          new RankingObjective().prefixLosses(tf.zeros([3, 4]), [2], {
            documents: tf.zeros([3, 4]),
            otherPositives: tf.zeros([2, 2]),
          }),
        ),
      'invalid-argument',
      "the ranking loss's other-positives mask is [2, 2] but the batch has 3 queries and 3 documents.",
    );
  });
});

function pairsValidation(rows: Rows): {
  database: Rows;
  queries: Rows;
  databaseLabels: Int32Array;
  queryLabels: Int32Array;
} {
  return {
    database: rows,
    queries: rows,
    databaseLabels: new Int32Array(rows.rows),
    queryLabels: new Int32Array(rows.rows),
  };
}

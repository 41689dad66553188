import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AdaptorWeights, applyAdaptor, MatryoshkaAdaptor } from '../src/adaptor/adaptor.js';
import { RankingObjective } from '../src/adaptor/losses.js';
import { type AdaptorBatch, AdaptorModel, adaptorBatches, fitAdaptor } from '../src/adaptor/train.js';
import { createRandom } from '../src/rng.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';
import { hostRanking } from './helpers/ranking.js';

describe('Matryoshka-Adaptor ranking term with hard negatives', () => {
  beforeAll(async () => {
    await initBackend('wasm', { kernels: 'wasm' });
  });

  it('scores every query against its positive, the other positives and all hard negatives, as a host computation does', () => {
    const n = 5;
    const extra = 3;
    const d = 6;
    const dims = [2, 6];
    const scale = 30;
    const q = randomArray(n * d, 11);
    const doc = randomArray((n + extra) * d, 12);
    const mask = new Float32Array(n * (n + extra));
    mask[0 * (n + extra) + 2] = 1; // document 2 is another positive of query 0
    mask[3 * (n + extra) + 6] = 1; // and hard negative 6 one of query 3
    const objective = new RankingObjective(scale);
    const [withNegatives, positivesOnly, masked] = tf.tidy(() => {
      const qt = tf.tensor2d(q, [n, d]);
      const all = tf.tensor2d(doc, [n + extra, d]);
      return [
        objective.prefixLosses(qt, dims, { documents: all }),
        objective.prefixLosses(qt, dims, { documents: tf.slice(all, [0, 0], [n, d]) }),
        objective.prefixLosses(qt, dims, { documents: all, otherPositives: tf.tensor2d(mask, [n, n + extra]) }),
      ].map((losses) => tf.stack(losses));
    }) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const expected = dims.map((m) => hostRanking(q, doc, n, n + extra, d, m, scale));
    const plain = dims.map((m) => hostRanking(q, doc, n, n, d, m, scale));
    expectClose(withNegatives.dataSync(), expected, 1e-4);
    expectClose(positivesOnly.dataSync(), plain, 1e-4);
    expectClose(
      masked.dataSync(),
      dims.map((m) => hostRanking(q, doc, n, n + extra, d, m, scale, mask)),
      1e-4,
    );
    // More negatives in the softmax: the loss can only rise.
    for (let j = 0; j < dims.length; j++) expect(expected[j]!).toBeGreaterThan(plain[j]!);
    tf.dispose([withNegatives, positivesOnly, masked]);
  });

  it('brings each drawn pair’s hard negative into its batch and the adaptor loss', () => {
    const d = 4;
    const pairsCount = 6;
    // Column 0 names the row: queries 0.., documents 100.., negatives 200..
    const named = (offset: number): Float32Array => {
      const data = randomArray(pairsCount * d, offset);
      for (let i = 0; i < pairsCount; i++) data[i * d] = offset + i;
      return data;
    };
    const queries = { data: named(0), rows: pairsCount, dim: d };
    const documents = { data: named(100), rows: pairsCount, dim: d };
    const negatives = { data: named(200), rows: pairsCount, dim: d };
    const corpus = { data: Float32Array.from([...queries.data, ...documents.data]), rows: 2 * pairsCount, dim: d };
    const batches = adaptorBatches(corpus, { queries, documents, negatives });
    const drawn = [7, 1, 4, 10, 3];
    const batch = batches.batch(Int32Array.from(drawn)) as AdaptorBatch;
    const pairRows = [1, 4, 3]; // 7 % 6, 1, 4, 10 % 6 (again 4: dropped), 3
    const column0 = (t: tf.Tensor2D | undefined): number[] =>
      Array.from(tf.tidy(() => tf.slice(t!, [0, 0], [-1, 1])).dataSync());
    expect(column0(batch.queries)).toEqual(pairRows);
    expect(column0(batch.documents)).toEqual(pairRows.map((r) => 100 + r));
    expect(column0(batch.negatives)).toEqual(pairRows.map((r) => 200 + r));

    // The freshly initialised adaptor is the identity, so the model's ranking parts are the host
    // loss of the raw vectors with the hard negatives after the documents.
    const dims = [2, 4];
    const adaptor = new MatryoshkaAdaptor({ dim: d, hidden: 3, dims }, createRandom(1));
    const model = new AdaptorModel(adaptor, {
      lossWeights: { pairwise: 0, topK: 0, reconstruction: 0, ranking: 1 },
      rankingScale: 20,
    });
    const parts = tf.tidy(() =>
      Object.fromEntries(Object.entries(model.loss(batch).parts).map(([k, v]) => [k, v.dataSync()[0]!])),
    );
    const q = batch.queries!.dataSync() as Float32Array;
    const both = Float32Array.from([...batch.documents!.dataSync(), ...batch.negatives!.dataSync()]);
    const p = pairRows.length;
    for (const m of dims) expectClose([parts[`ranking/loss/${m}`]!], [hostRanking(q, both, p, 2 * p, d, m, 20)], 1e-4);
    batch.dispose();
    adaptor.dispose();
  });

  it('refuses hard negatives that do not match the pairs, naming the count, size or row', async () => {
    const corpus = { data: randomArray(40, 1), rows: 10, dim: 4 };
    const pairs = { queries: corpus, documents: corpus };
    await expect(
      fitAdaptor({
        corpus,
        dims: [2, 4],
        pairs: { ...pairs, negatives: { data: randomArray(36, 2), rows: 9, dim: 4 } },
      }),
    ).rejects.toThrow('the pairs have 10 queries but 9 hard negatives.');
    await expect(
      fitAdaptor({
        corpus,
        dims: [2, 4],
        pairs: { ...pairs, negatives: { data: randomArray(30, 2), rows: 10, dim: 3 } },
      }),
    ).rejects.toThrow('the hard-negative embeddings have 3 dims but the corpus embeddings have 4.');
    const bad = randomArray(40, 3);
    bad[4 * 7 + 2] = Number.NaN;
    await expect(
      fitAdaptor({ corpus, dims: [2, 4], pairs: { ...pairs, negatives: { data: bad, rows: 10, dim: 4 } } }),
    ).rejects.toThrow('the hard-negative embeddings row 7 column 2 is NaN; embeddings must be finite.');
    expectMrlError(
      () => tf.tidy(() => new RankingObjective().prefixLosses(tf.zeros([3, 4]), [2], { documents: tf.zeros([2, 4]) })),
      'invalid-argument',
      'the ranking loss got 3 queries but 2 documents.',
    );
  });

  it('trains with hard negatives: the adapted prefix ranks each query’s document above its hard negative', async () => {
    // Queries sit near their document and, in the first two dims, nearer still to their hard
    // negative; only the last two dims tell them apart. Ranking with hard negatives must move that
    // difference into the 2-dim prefix.
    const d = 6;
    const n = 64;
    const random = createRandom(21);
    const g = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const make = (): { q: Float32Array; doc: Float32Array; neg: Float32Array } => {
      const q = new Float32Array(n * d);
      const doc = new Float32Array(n * d);
      const neg = new Float32Array(n * d);
      for (let i = 0; i < n; i++) {
        const topic = [g(), g(), g(), g()];
        const answer = [g(), g()];
        for (let j = 0; j < 4; j++) {
          q[i * d + j] = topic[j]!;
          doc[i * d + j] = topic[j]! + 0.3 * g();
          neg[i * d + j] = topic[j]! + 0.05 * g();
        }
        for (let j = 0; j < 2; j++) {
          q[i * d + 4 + j] = 0.5 * answer[j]!;
          doc[i * d + 4 + j] = 0.5 * answer[j]!;
          neg[i * d + 4 + j] = -0.5 * answer[j]!;
        }
      }
      return { q, doc, neg };
    };
    const train = make();
    const rows = (data: Float32Array) => ({ data, rows: n, dim: d });
    const corpus = { data: Float32Array.from([...train.q, ...train.doc]), rows: 2 * n, dim: d };
    const pairs = { queries: rows(train.q), documents: rows(train.doc), negatives: rows(train.neg) };
    const wins = (weights: AdaptorWeights, m: number): number => {
      const test = make();
      const apply = (data: Float32Array): Float32Array => applyAdaptor(weights, { data, rows: n, dim: d }).data;
      const [q, doc, neg] = [apply(test.q), apply(test.doc), apply(test.neg)];
      const cos = (x: Float32Array, y: Float32Array, i: number): number => {
        let xy = 0;
        let xx = 0;
        let yy = 0;
        for (let j = 0; j < m; j++) {
          xy += x[i * d + j]! * y[i * d + j]!;
          xx += x[i * d + j]! ** 2;
          yy += y[i * d + j]! ** 2;
        }
        return xy / Math.sqrt(xx * yy);
      };
      let count = 0;
      for (let i = 0; i < n; i++) if (cos(q, doc, i) > cos(q, neg, i)) count++;
      return count / n;
    };
    const common = {
      corpus,
      dims: [2, 6],
      epochs: 60,
      batchSize: 32,
      lr: 0.01,
      lossWeights: { pairwise: 0, topK: 0, reconstruction: 0 },
      seed: 3,
    };
    const plain = await fitAdaptor({ ...common, pairs: { queries: pairs.queries, documents: pairs.documents } });
    const hard = await fitAdaptor({ ...common, pairs });
    const [plainWins, hardWins] = [wins(await plain.adaptor.weights(), 2), wins(await hard.adaptor.weights(), 2)];
    plain.adaptor.dispose();
    hard.adaptor.dispose();
    // In one run: 0.84 with hard negatives, 0.48 (chance) without.
    expect(hardWins).toBeGreaterThan(0.75);
    expect(hardWins).toBeGreaterThan(plainWins + 0.25);
  }, 60_000);
});

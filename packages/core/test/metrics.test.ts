import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EmbeddingMatrix } from '../src/evaluate/embeddings.js';
import { headTop1, majorityClass, retrievalMetrics } from '../src/evaluate/metrics.js';
import { formatTable, percent } from '../src/evaluate/table.js';
import { SeparateHeads, SharedHead, type PrefixHead } from '../src/heads.js';
import { createRandom, type Random } from '../src/rng.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function expectNear(actual: number, expected: number, tol = 1e-6): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tol);
}

function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function randomMatrix(rows: number, dim: number, random: Random): EmbeddingMatrix {
  return { data: Float32Array.from({ length: rows * dim }, () => gaussian(random)), rows, dim };
}

/** Labels 0..classes-1 with some signal: rows of a class share a mean direction. */
function clustered(
  rows: number,
  dim: number,
  labels: Int32Array,
  centres: number[][],
  random: Random,
): EmbeddingMatrix {
  const data = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < dim; j++) data[r * dim + j] = centres[labels[r]!]![j]! + 1.5 * gaussian(random);
  return { data, rows, dim };
}

interface Reference {
  nnTop1: number;
  map10: number;
  ndcg10: number;
  recall: Record<number, number>;
}

/** Brute force in Float64: cosine on each prefix normalised on its own, full sort of the database. */
function bruteForce(
  db: EmbeddingMatrix,
  dbLabels: Int32Array,
  queries: EmbeddingMatrix,
  queryLabels: Int32Array,
  m: number,
  ks: number[],
): Reference {
  const prefix = (x: EmbeddingMatrix, r: number): number[] => {
    const v = Array.from(x.data.subarray(r * x.dim, r * x.dim + m));
    const norm = Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    return v.map((a) => a / norm);
  };
  const dbRows = Array.from({ length: db.rows }, (_, r) => prefix(db, r));
  let nn = 0;
  let ap = 0;
  let ndcg = 0;
  const recallHits = ks.map(() => 0);
  for (let q = 0; q < queries.rows; q++) {
    const qv = prefix(queries, q);
    const order = dbRows
      .map((row, i) => ({ i, s: row.reduce((acc, a, j) => acc + a * qv[j]!, 0) }))
      .sort((a, b) => b.s - a.s)
      .map((x) => x.i);
    const rel = order.map((i) => dbLabels[i] === queryLabels[q]);
    if (rel[0]) nn += 1;
    let found = 0;
    let sum = 0;
    for (let r = 0; r < 10; r++) {
      if (rel[r]) {
        found += 1;
        sum += found / (r + 1);
      }
    }
    const relevantInDb = Array.from(dbLabels).filter((l) => l === queryLabels[q]).length;
    const norm = Math.min(relevantInDb, 10);
    ap += norm > 0 ? sum / norm : 0;
    // nDCG@10, binary gains: the ideal ranking puts min(#relevant, 10) relevant items first.
    let dcg = 0;
    let ideal = 0;
    for (let r = 0; r < 10; r++) {
      if (rel[r]) dcg += 1 / Math.log2(r + 2);
      if (r < norm) ideal += 1 / Math.log2(r + 2);
    }
    ndcg += ideal > 0 ? dcg / ideal : 0;
    ks.forEach((k, j) => {
      if (rel.slice(0, k).some(Boolean)) recallHits[j]! += 1;
    });
  }
  const recall: Record<number, number> = {};
  ks.forEach((k, j) => {
    recall[k] = recallHits[j]! / queries.rows;
  });
  return { nnTop1: nn / queries.rows, map10: ap / queries.rows, ndcg10: ndcg / queries.rows, recall };
}

describe('retrievalMetrics', () => {
  const random = createRandom(42);
  const d = 16;
  const dims = [4, 8, 16];
  const classes = 3;
  const centres = Array.from({ length: classes }, () => Array.from({ length: d }, () => gaussian(random)));
  const dbLabels = Int32Array.from({ length: 60 }, () => Math.floor(random() * classes));
  const queryLabels = Int32Array.from({ length: 15 }, () => Math.floor(random() * classes));
  const database = clustered(60, d, dbLabels, centres, random);
  const queries = clustered(15, d, queryLabels, centres, random);

  it('matches a brute-force computation at every prefix', async () => {
    const ks = [1, 3, 5, 10];
    const metrics = await retrievalMetrics({ database, databaseLabels: dbLabels, queries, queryLabels, dims, ks });
    expect(metrics.map((r) => r.dim)).toEqual(dims);
    const seen = new Set<string>();
    metrics.forEach((actual, j) => {
      const expected = bruteForce(database, dbLabels, queries, queryLabels, dims[j]!, ks);
      expectNear(actual.nnTop1, expected.nnTop1);
      expectNear(actual.map10, expected.map10);
      expectNear(actual.ndcg10, expected.ndcg10);
      expect(Object.keys(actual.recall).map(Number)).toEqual(ks);
      for (const k of ks) expectNear(actual.recall[k]!, expected.recall[k]!);
      seen.add(`${expected.nnTop1}/${expected.map10}`);
    });
    // The prefixes give different numbers, so slicing the wrong prefix would show.
    expect(seen.size).toBeGreaterThan(1);
  });

  it('normalises each prefix on its own', async () => {
    // The same-label row is nearest on the first 4 dims but has a large tail. Normalising the full
    // row before slicing would shrink its prefix and rank the other row first at m=4 as well.
    const q: EmbeddingMatrix = { data: new Float32Array([1, 0, 0, 0, 0, 0, 0, 0]), rows: 1, dim: 8 };
    const db: EmbeddingMatrix = {
      data: new Float32Array([
        1,
        0.05,
        0,
        0,
        20,
        0,
        0,
        0, // same label
        1,
        0.3,
        0,
        0,
        0,
        0,
        0,
        0, // other label
      ]),
      rows: 2,
      dim: 8,
    };
    const [m4, m8] = await retrievalMetrics({
      database: db,
      databaseLabels: new Int32Array([0, 1]),
      queries: q,
      queryLabels: new Int32Array([0]),
      dims: [4, 8],
      ks: [1],
    });
    expect(m4!.nnTop1).toBe(1);
    expect(m8!.nnTop1).toBe(0);
  });

  it('gives the same numbers with small query chunks and default ks', async () => {
    const whole = await retrievalMetrics({ database, databaseLabels: dbLabels, queries, queryLabels, dims });
    const chunked = await retrievalMetrics({
      database,
      databaseLabels: dbLabels,
      queries,
      queryLabels,
      dims,
      chunk: 4,
    });
    expect(Object.keys(whole[0]!.recall).map(Number)).toEqual([1, 5, 10]);
    whole.forEach((w, j) => {
      const c = chunked[j]!;
      expectNear(c.nnTop1, w.nnTop1);
      expectNear(c.map10, w.map10);
      for (const k of [1, 5, 10]) expectNear(c.recall[k]!, w.recall[k]!);
      const expected = bruteForce(database, dbLabels, queries, queryLabels, dims[j]!, [1, 5, 10]);
      expectNear(w.recall[5]!, expected.recall[5]!);
    });
  });

  it('normalises AP@10 by the number of relevant items when there are fewer than 10', async () => {
    const random2 = createRandom(5);
    const db = randomMatrix(20, 4, random2);
    const q = randomMatrix(6, 4, random2);
    // Label 2 has only two database items.
    const dbL = Int32Array.from({ length: 20 }, (_, i) => (i < 2 ? 2 : i % 2));
    const qL = new Int32Array([2, 2, 2, 0, 1, 0]);
    const [metrics] = await retrievalMetrics({
      database: db,
      databaseLabels: dbL,
      queries: q,
      queryLabels: qL,
      dims: [4],
      ks: [1, 20],
    });
    const expected = bruteForce(db, dbL, q, qL, 4, [1, 20]);
    expectNear(metrics!.map10, expected.map10);
    expect(metrics!.recall[20]).toBe(1);
  });

  it('with center, subtracts the database mean from both sides before normalising', async () => {
    // A shared offset much larger than the class structure: raw cosine sees almost one direction.
    const offset = Array.from({ length: d }, () => 40 * gaussian(random));
    const shift = (m: EmbeddingMatrix, by: (j: number) => number): EmbeddingMatrix => ({
      ...m,
      data: m.data.map((v, i) => v + by(i % d)),
    });
    const shiftedDb = shift(database, (j) => offset[j]!);
    const shiftedQ = shift(queries, (j) => offset[j]!);
    const mean = Array.from(
      { length: d },
      (_, j) =>
        Array.from({ length: database.rows }, (_, i) => shiftedDb.data[i * d + j]!).reduce((a, b) => a + b, 0) /
        database.rows,
    );
    const centred = await retrievalMetrics({
      database: shiftedDb,
      databaseLabels: dbLabels,
      queries: shiftedQ,
      queryLabels,
      dims,
      center: true,
    });
    centred.forEach((actual, j) => {
      const expected = bruteForce(
        shift(shiftedDb, (k) => -mean[k]!),
        dbLabels,
        shift(shiftedQ, (k) => -mean[k]!),
        queryLabels,
        dims[j]!,
        [1, 5, 10],
      );
      expectNear(actual.nnTop1, expected.nnTop1);
      expectNear(actual.map10, expected.map10);
    });
    const raw = await retrievalMetrics({
      database: shiftedDb,
      databaseLabels: dbLabels,
      queries: shiftedQ,
      queryLabels,
      dims,
    });
    expect(raw[0]!.map10).toBeLessThan(centred[0]!.map10);
  });

  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    await retrievalMetrics({ database, databaseLabels: dbLabels, queries, queryLabels, dims, chunk: 4, center: true });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('headTop1', () => {
  const random = createRandom(8);
  const d = 12;
  const dims = [3, 6, 12];
  const rows = 40;
  const embeddings = randomMatrix(rows, d, random);

  /** Argmax of the head's own logits, computed in JS. */
  function manualPredictions(head: PrefixHead): number[][] {
    const z = tf.tensor2d(embeddings.data, [rows, d]);
    const logits = head.logits(z, dims);
    const out = logits.map((l) => {
      const v = l.dataSync();
      const c = l.shape[1];
      return Array.from({ length: rows }, (_, r) => {
        let best = 0;
        for (let j = 1; j < c; j++) if (v[r * c + j]! > v[r * c + best]!) best = j;
        return best;
      });
    });
    tf.dispose([z, ...logits]);
    return out;
  }

  const heads: [string, () => PrefixHead][] = [
    ['SharedHead', () => new SharedHead(d, 5, createRandom(1))],
    ['SeparateHeads', () => new SeparateHeads(d, 5, dims, createRandom(2))],
  ];
  for (const [label, make] of heads) {
    it(`equals the accuracy of a manual argmax of the logits (${label})`, async () => {
      const head = make();
      const predictions = manualPredictions(head);
      // Labels: the prediction of the middle prefix for even rows, a wrong class for odd rows.
      const labels = Int32Array.from({ length: rows }, (_, r) =>
        r % 2 === 0 ? predictions[1]![r]! : (predictions[1]![r]! + 1) % 5,
      );
      const expected = predictions.map((p) => p.filter((c, r) => c === labels[r]).length / rows);
      const before = tf.memory().numTensors;
      const actual = await headTop1(head, embeddings, labels, dims, 7);
      expect(tf.memory().numTensors).toBe(before);
      expect(actual).toHaveLength(dims.length);
      actual.forEach((a, j) => expectNear(a, expected[j]!, 1e-12));
      expect(actual[1]).toBe(0.5);
      expect(await headTop1(head, embeddings, labels, dims)).toEqual(actual);
      for (const v of head.variables().values()) v.dispose();
    });
  }
});

describe('formatTable / percent', () => {
  it('right-aligns columns, formats numbers and shows missing values as -', async () => {
    const rows = [
      { dim: 8, acc: 0.91234, name: 'a' },
      { dim: 128, acc: undefined, name: 'longer' },
    ];
    const table = formatTable(rows, [
      { header: 'dim', value: (r) => r.dim, digits: 0 },
      { header: 'accuracy', value: (r) => r.acc },
      { header: 'n', value: (r) => r.name },
    ]);
    expect(table.split('\n')).toEqual([
      'dim  accuracy       n',
      '---  --------  ------',
      '  8    0.9123       a',
      '128         -  longer',
    ]);
  });

  it('formats percent with two decimals and passes undefined through', async () => {
    expect(percent(0.91234)).toBe('91.23');
    expect(percent(1)).toBe('100.00');
    expect(percent(undefined)).toBeUndefined();
  });
});

describe('majorityClass', () => {
  it('answers the most frequent training label (lowest id on a tie) and scores it on the test labels', () => {
    expect(majorityClass([2, 1, 2, 0, 2], [2, 2, 1, 0])).toEqual({ label: 2, accuracy: 0.5 });
    // Labels 1 and 3 tie in training: the lower id is the reference, whatever the order.
    expect(majorityClass(Int32Array.from([3, 1, 3, 1]), Int32Array.from([1, 3, 1]))).toEqual({
      label: 1,
      accuracy: 2 / 3,
    });
    expect(majorityClass([4], [])).toEqual({ label: 4, accuracy: 0 });
  });
});

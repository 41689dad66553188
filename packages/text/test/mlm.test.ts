import * as tf from '@tensorflow/tfjs';
import { createRandom, MatryoshkaLoss } from '@mrl/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { maskTokens, TiedMlmObjective } from '../src/mlm.js';
import type { EncodedBatch, SpecialIds } from '../src/tokenizer/tokenizer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const special: SpecialIds = { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 };

describe('BERT masking', () => {
  it('chooses 15% of real tokens: 80% [MASK], 10% random, 10% kept; never specials or padding', () => {
    const rows = 400;
    const length = 64;
    const ids = new Int32Array(rows * length);
    const attentionMask = new Int32Array(rows * length);
    let real = 0;
    for (let r = 0; r < rows; r++) {
      const len = 20 + (r % 44); // [CLS] w... [SEP] then padding
      for (let t = 0; t < len; t++) {
        ids[r * length + t] = t === 0 ? special.cls : t === len - 1 ? special.sep : 5 + ((r * 7 + t * 13) % 995);
        attentionMask[r * length + t] = 1;
      }
      real += len - 2;
    }
    const batch: EncodedBatch = { ids, attentionMask, batch: rows, length };
    const masked = maskTokens(batch, special, 1000, createRandom(7));
    const m = masked.positions.length;
    expect(m / real).toBeGreaterThan(0.14);
    expect(m / real).toBeLessThan(0.16);
    let asMask = 0;
    let kept = 0;
    masked.positions.forEach((pos, j) => {
      expect(attentionMask[pos]).toBe(1);
      expect([special.cls, special.sep, special.pad]).not.toContain(ids[pos]);
      expect(masked.labels[j]).toBe(ids[pos]);
      const now = masked.inputIds[pos]!;
      if (now === special.mask) asMask += 1;
      else if (now === ids[pos]) kept += 1;
      else expect(now).toBeGreaterThan(special.mask); // random replacements are non-special ids
    });
    const randomised = m - asMask - kept;
    expect(asMask / m).toBeGreaterThan(0.77);
    expect(asMask / m).toBeLessThan(0.83);
    expect(randomised / m).toBeGreaterThan(0.08);
    expect(randomised / m).toBeLessThan(0.12);
    // Random ids can hit the original id (1 in 995), so "kept" is slightly above 10% at most.
    expect(kept / m).toBeGreaterThan(0.08);
    expect(kept / m).toBeLessThan(0.12);
    // Positions not chosen are untouched.
    const chosen = new Set(masked.positions);
    for (let i = 0; i < ids.length; i++) if (!chosen.has(i)) expect(masked.inputIds[i]).toBe(ids[i]);
  });

  it('with maskFraction 1 (the held-out scoring) every chosen token becomes [MASK]; probability 0.3 chooses ~30%', () => {
    const rows = 200;
    const length = 32;
    const ids = new Int32Array(rows * length);
    const attentionMask = new Int32Array(rows * length).fill(1);
    for (let i = 0; i < ids.length; i++)
      ids[i] = i % length === 0 ? special.cls : i % length === length - 1 ? special.sep : 5 + (i % 90);
    const batch: EncodedBatch = { ids, attentionMask, batch: rows, length };
    const all = maskTokens(batch, special, 100, createRandom(3), { maskFraction: 1, randomFraction: 0 });
    all.positions.forEach((pos) => expect(all.inputIds[pos]).toBe(special.mask));
    const dense = maskTokens(batch, special, 100, createRandom(3), { probability: 0.3 });
    expect(dense.positions.length / (rows * (length - 2))).toBeCloseTo(0.3, 1);
  });

  it('always masks at least one token and rejects a batch without maskable tokens', () => {
    const one: EncodedBatch = {
      ids: Int32Array.from([2, 9, 3]),
      attentionMask: Int32Array.from([1, 1, 1]),
      batch: 1,
      length: 3,
    };
    expect(maskTokens(one, special, 100, createRandom(1), { probability: 0.01 }).positions).toEqual(
      Int32Array.from([1]),
    );
    const none: EncodedBatch = {
      ids: Int32Array.from([2, 3, 0]),
      attentionMask: Int32Array.from([1, 1, 0]),
      batch: 1,
      length: 3,
    };
    expect(() => maskTokens(none, special, 100, createRandom(1))).toThrow(/no maskable tokens/);
  });
});

describe('tied MRL-E masked-LM output', () => {
  const V = 7;
  const d = 6;
  const dims = [2, 4, 6];

  it('prefix m scores h[:, :m] against the first m columns of the embedding table', () => {
    const table = tf.variable(tf.randomNormal([V, d], 0, 1, 'float32', 1));
    const objective = new TiedMlmObjective(table);
    objective.bias.assign(tf.randomNormal([V], 0, 1, 'float32', 2));
    const h = tf.randomNormal([3, d], 0, 1, 'float32', 3) as tf.Tensor2D;
    const logits = objective.logits(h, dims);
    dims.forEach((m, j) => {
      const expected = tf.add(
        tf.matMul(tf.slice(h, [0, 0], [-1, m]), tf.slice(table, [0, 0], [-1, m]), false, true),
        objective.bias,
      );
      const got = logits[j]!.arraySync().flat();
      expected
        .arraySync()
        .flat()
        .forEach((v, i) => expect(got[i]!).toBeCloseTo(v, 4));
    });
  });

  it('names an unknown head form', () => {
    const table = tf.variable(tf.zeros([V, d]));
    expect(() => new TiedMlmObjective(table, { head: 'dense' as 'chunked' })).toThrow(
      /the MLM head must be 'chunked' or 'stacked', got 'dense'/,
    );
    table.dispose();
  });

  it('the chunked and stacked heads give the same losses', () => {
    const table = tf.variable(tf.randomNormal([V, d], 0, 1, 'float32', 7));
    const hidden = tf.randomNormal([5, d], 0, 1, 'float32', 8) as tf.Tensor2D;
    const labels = tf.tensor1d([0, 6, 2, 3, 1], 'int32');
    const [chunked, stacked] = (['chunked', 'stacked'] as const).map((head) =>
      new TiedMlmObjective(table, { head, chunk: 3 }).prefixLossVector(hidden, dims, { labels }).dataSync(),
    );
    expect(chunked!.length).toBe(dims.length);
    chunked!.forEach((v, j) => expect(v).toBeCloseTo(stacked![j]!, 5));
  });

  it('matches numerical gradients for the table, the bias and the hidden states', () => {
    const table = tf.variable(tf.randomNormal([V, d], 0, 0.5, 'float32', 4));
    const objective = new TiedMlmObjective(table);
    objective.bias.assign(tf.randomNormal([V], 0, 0.5, 'float32', 5));
    const hidden = tf.variable(tf.randomNormal([4, d], 0, 1, 'float32', 6));
    const labels = tf.tensor1d([1, 5, 0, 6], 'int32');
    const loss = new MatryoshkaLoss(objective, { embeddingDim: d, dims, weights: [1, 0.5, 2] });
    const f = (): tf.Scalar => loss.compute(hidden as tf.Tensor2D, { labels }).total;
    const value = (): number => tf.tidy(() => f().dataSync()[0]!);
    const { grads } = tf.variableGrads(f, [table, objective.bias, hidden]);
    const eps = 1e-2;
    let checked = 0;
    for (const variable of [table, objective.bias, hidden]) {
      const analytic = grads[variable.name]!.dataSync();
      const base = variable.dataSync().slice();
      for (let i = 0; i < base.length; i++) {
        const plus = base.slice();
        plus[i]! += eps;
        variable.assign(tf.tensor(plus, variable.shape));
        const up = value();
        const minus = base.slice();
        minus[i]! -= eps;
        variable.assign(tf.tensor(minus, variable.shape));
        const down = value();
        variable.assign(tf.tensor(base, variable.shape));
        const numeric = (up - down) / (2 * eps);
        expect(Math.abs(numeric - analytic[i]!)).toBeLessThan(2e-3 + 1e-2 * Math.abs(numeric));
        checked += 1;
      }
    }
    expect(checked).toBe(V * d + V + 4 * d);
    // The table gets gradient through the tied output (it is not the encoder's input here).
    expect(Math.max(...grads[table.name]!.dataSync().map(Math.abs))).toBeGreaterThan(1e-3);
  });
});

import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { createRandom, initBackend, MrlError } from '@mrl/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { BertEncoder, bertConfig, BERT_CONFIGS, type BertConfig } from '../src/bert.js';
import { deviceRowGradient, gatherRows, ONE_HOT_GRADIENT_ROWS } from '../src/gather.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const small = (overrides: Partial<BertConfig> = {}): BertConfig =>
  bertConfig('bert-tiny', {
    vocabSize: 50,
    embeddingDim: 16,
    numHeads: 2,
    intermediateSize: 32,
    maxPositions: 16,
    dropout: 0,
    ...overrides,
  });

function batch(rows: number[][], length: number): { ids: tf.Tensor2D; attentionMask: tf.Tensor2D } {
  const ids = rows.map((r) => [...r, ...Array(length - r.length).fill(0)]);
  const mask = rows.map((r) => [...r.map(() => 1), ...Array(length - r.length).fill(0)]);
  return {
    ids: tf.tensor2d(ids, [rows.length, length], 'int32'),
    attentionMask: tf.tensor2d(mask, [rows.length, length], 'int32'),
  };
}

describe('BERT config registry', () => {
  it('holds tiny, mini and small', () => {
    expect(Object.keys(BERT_CONFIGS)).toEqual(['bert-tiny', 'bert-mini', 'bert-small']);
    expect(bertConfig('bert-mini').embeddingDim).toBe(256);
    expect(bertConfig('bert-tiny', { vocabSize: 1000 }).vocabSize).toBe(1000);
  });

  it('lists the known names for an unknown one', () => {
    try {
      bertConfig('bert-huge');
      expect.unreachable();
    } catch (e) {
      expect(MrlError.is(e) && e.kind).toBe('unknown-name');
      expect((e as MrlError).message).toContain("unknown BERT config 'bert-huge'");
      expect((e as MrlError).fix).toBe('Choose one of: bert-tiny, bert-mini, bert-small.');
    }
  });

  it('rejects a hidden size the heads do not divide', () => {
    expect(() => bertConfig('bert-tiny', { embeddingDim: 30, numHeads: 4 })).toThrow(
      /embeddingDim 30 is not divisible by numHeads 4/,
    );
  });

  it('rejects a non-positive initializerRange', () => {
    expect(() => bertConfig('bert-tiny', { initializerRange: 0 })).toThrow('bert initializerRange must be > 0, got 0.');
  });
});

describe('BertEncoder', () => {
  it('gives token states [B, T, d] and pooled embeddings [B, d], freeing its intermediates', () => {
    const bert = new BertEncoder(small(), createRandom(1));
    const b = batch(
      [
        [2, 5, 6, 3],
        [2, 7, 3],
      ],
      4,
    );
    const before = tf.memory().numTensors;
    const states = bert.encodeTokens(b, false);
    const pooled = bert.encode(b, false);
    expect(states.shape).toEqual([2, 4, 16]);
    expect(pooled.shape).toEqual([2, 16]);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([states, pooled, b.ids, b.attentionMask]);
    bert.dispose();
  });

  for (const pooling of ['mean', 'cls'] as const) {
    it(`padding changes nothing (${pooling} pooling): the attention mask hides padded keys`, () => {
      const bert = new BertEncoder(small({ pooling }), createRandom(2));
      const sentence = [2, 11, 12, 13, 3];
      const short = batch([sentence], 5);
      // Same sentence padded to 9 with random, non-pad ids under a zero mask: only the mask hides them.
      const long = {
        ids: tf.tensor2d([[...sentence, 40, 41, 42, 43]], [1, 9], 'int32'),
        attentionMask: tf.tensor2d([[1, 1, 1, 1, 1, 0, 0, 0, 0]], [1, 9], 'int32'),
      };
      const a = bert.encode(short, false).arraySync();
      const b = bert.encode(long, false).arraySync();
      for (let j = 0; j < 16; j++) expect(b[0]![j]!).toBeCloseTo(a[0]![j]!, 5);
      const sa = bert.encodeTokens(short, false).arraySync()[0]!;
      const sb = bert.encodeTokens(long, false).arraySync()[0]!;
      for (let t = 0; t < 5; t++) for (let j = 0; j < 16; j++) expect(sb[t]![j]!).toBeCloseTo(sa[t]![j]!, 5);
      // Without the mask the padded tokens are attended to and the embedding moves.
      const unmasked = bert
        .encode({ ids: long.ids, attentionMask: tf.onesLike(long.attentionMask) as tf.Tensor2D }, false)
        .arraySync();
      const moved = Math.max(...unmasked[0]!.map((v, j) => Math.abs(v - a[0]![j]!)));
      expect(moved).toBeGreaterThan(1e-3);
      bert.dispose();
    });
  }

  it('rejects a sequence longer than maxPositions', () => {
    const bert = new BertEncoder(small({ maxPositions: 4 }), createRandom(3));
    expect(() => bert.encode(batch([[2, 3, 4, 5, 6]], 5), false)).toThrow(
      /sequence length 5 exceeds the model's maxPositions 4/,
    );
    bert.dispose();
  });
});

describe('gatherRows', () => {
  it("sums a device backend's gradient into rows alike for one-hot tables and segment sums", () => {
    // Both paths of deviceRowGradient against a plain host loop; ids 7 and -1 lie outside the small table.
    const n = 40;
    const d = 3;
    const dyValues = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 0.7) * (1 + (i % 5)));
    for (const rows of [2, ONE_HOT_GRADIENT_ROWS + 36]) {
      const ids = Int32Array.from({ length: n }, (_, i) => (i % 9 === 4 ? (rows === 2 ? 7 : -1) : (i * 5) % rows));
      const want = new Float64Array(rows * d);
      ids.forEach((id, i) => {
        if (id < 0 || id >= rows) return;
        for (let j = 0; j < d; j++) want[id * d + j]! += dyValues[i * d + j]!;
      });
      const got = tf.tidy(() =>
        deviceRowGradient(tf.tensor2d(dyValues, [n, d]), tf.tensor1d(ids, 'int32'), rows).dataSync(),
      );
      expect(got.length).toBe(rows * d);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
    }
  });

  it('scatters the gradient back to repeated rows', () => {
    const table = tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const idx = tf.tensor1d([2, 0, 2], 'int32');
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(
        tf.mul(
          gatherRows(t as tf.Tensor2D, idx),
          tf.tensor2d([
            [1, 2],
            [3, 4],
            [5, 6],
          ]),
        ),
      ),
    )(table);
    expect(g.arraySync()).toEqual([
      [3, 4],
      [0, 0],
      [6, 8],
    ]);
  });
});

describe('BertEncoder attention on the fused kernels', () => {
  it('training with dropout: states and weight gradients on wasm with MrlAttention as on cpu (the TF.js ops)', async () => {
    const run = (): Map<string, Float32Array> => {
      const bert = new BertEncoder(small({ dropout: 0.1, embeddingDim: 32, numHeads: 4 }), createRandom(9));
      const b = batch(
        [
          [5, 6, 7, 8, 9, 10, 11],
          [3, 4, 5],
        ],
        7,
      );
      const w = tf.randomNormal([2, 7, 32], 0, 1, 'float32', 3);
      const named = [...bert.variables()];
      const vars = named.map(([, v]) => v);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(bert.encodeTokens(b, true), w)), vars);
      const out = new Map<string, Float32Array>([['value', Float32Array.from(value.dataSync())]]);
      for (const [name, v] of named) out.set(name, Float32Array.from(grads[v.name]!.dataSync()));
      tf.dispose([value, w, b.ids, b.attentionMask, ...Object.values(grads), ...vars]);
      return out;
    };
    const maxAbs = (a: Float32Array): number => Math.max(...Array.from(a, Math.abs));
    const want = run();
    try {
      await initBackend('wasm', { threads: 2 });
      if (existsSync('/usr/include/oneapi/dnnl/dnnl.hpp')) expect(tf.getKernel('MrlAttention', 'wasm')).toBeDefined();
      const got = run();
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [name, e] of want) {
        const g = got.get(name)!;
        // The key bias's gradient is 0 in exact arithmetic (softmax ignores a shift shared by a
        // row's scores): both sides are rounding noise, far below the query bias's gradient.
        const scale = name.endsWith('/k/b') ? maxAbs(want.get(name.replace('/k/b', '/q/b'))!) : maxAbs(e);
        const worst = Math.max(...Array.from(g, (v, j) => Math.abs(v - e[j]!)));
        expect(worst / scale, name).toBeLessThan(1e-4);
      }
    } finally {
      await tf.setBackend('cpu');
    }
  });
});

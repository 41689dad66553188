import { describe, expect, it } from 'vitest';
import { recallAtK } from '../src/metrics.js';
import { popcount32, quantizeBinary, quantizeInt8, quantizedTopK } from '../src/quantize.js';
import { MatryoshkaIndex } from '../src/vector-index.js';
import { clustered, rng } from './synthetic.js';

describe('popcount32', () => {
  it('matches a bit-by-bit count', () => {
    const rand = rng(3);
    for (let t = 0; t < 1000; t++) {
      const x = Math.floor(rand() * 2 ** 32) >>> 0;
      let naive = 0;
      for (let b = 0; b < 32; b++) naive += (x >>> b) & 1;
      expect(popcount32(x)).toBe(naive);
    }
    expect(popcount32(0xffffffff)).toBe(32);
    expect(popcount32(0)).toBe(0);
  });
});

describe('quantizeInt8', () => {
  const data = Float32Array.from([0.5, -1, 0.25, 2, 0, 0, 4, -0.1, 1]);
  const view = { data, rows: 3, stride: 3 };

  it('per-vector: codes reconstruct each row within half a step of its own scale', () => {
    const q = quantizeInt8(view, 2, 'per-vector');
    expect(q.codes.length).toBe(6);
    expect(q.codes[1]).toBe(-127); // row 0 max |x| = 1 -> -1 maps to -127
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 2; j++) {
        const x = data[i * 3 + j] as number;
        const back = (q.codes[i * 2 + j] as number) * (q.scales[i] as number);
        expect(Math.abs(back - x)).toBeLessThanOrEqual((q.scales[i] as number) / 2 + 1e-7);
      }
    }
  });

  it('per-dim: one scale per coordinate', () => {
    const q = quantizeInt8(view, 3, 'per-dim');
    expect(q.scales.length).toBe(3);
    expect(q.scales[0]).toBeCloseTo(4 / 127, 7);
    expect(q.codes[6]).toBe(127);
  });

  it('rejects an unknown scale mode by name', () => {
    expect(() => quantizeInt8(view, 2, 'per-row' as never)).toThrow(/'per-vector' or 'per-dim', got 'per-row'/);
  });
});

describe('quantizeBinary', () => {
  it('packs sign bits 32 per word', () => {
    const d = 40;
    const data = Float32Array.from({ length: d }, (_, j) => (j % 3 === 0 ? 1 : -1));
    const b = quantizeBinary({ data, rows: 1, stride: d }, d);
    expect(b.wordsPerVector).toBe(2);
    expect(popcount32(b.bits[0] as number)).toBe(11); // j = 0, 3, ..., 30
    expect(popcount32(b.bits[1] as number)).toBe(3); // j = 33, 36, 39
  });

  it('scores by negative Hamming distance', () => {
    const d = 8;
    const rows = Float32Array.from([
      1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1,
    ]);
    const b = quantizeBinary({ data: rows, rows: 3, stride: d }, d);
    const [heap] = quantizedTopK(b, { data: Float32Array.from([1, 1, 1, 1, 1, 1, 1, -1]), rows: 1, stride: d }, 3);
    const ids = new Int32Array(3);
    const scores = new Float64Array(3);
    heap!.drainInto(ids, scores, 0);
    expect(Array.from(ids)).toEqual([0, 2, 1]);
    expect(Array.from(scores)).toEqual([-1, -3, -7]);
  });
});

describe('quantised first stage + float re-rank', () => {
  const d = 64;
  const data = clustered(6000, 60, d, 40, 11);
  const index = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, labels: data.labels });
  const exact = index.search(data.queries, { k: 10 });

  it.each([
    ['int8 per-vector', { kind: 'int8', dim: 32, scale: 'per-vector' } as const, 100],
    ['int8 per-dim', { kind: 'int8', dim: 32, scale: 'per-dim' } as const, 100],
    ['binary', { kind: 'binary', dim: 64 } as const, 300],
  ])('%s reaches recall@10 >= 0.9 against exact full-dim search', (_name, spec, shortlistK) => {
    const firstStage = index.quantize(spec);
    const r = index.shortlistRerank(data.queries, {
      shortlistDim: spec.dim,
      shortlistK,
      rerankDim: d,
      k: 10,
      firstStage,
    });
    expect(recallAtK(r, exact, 10)).toBeGreaterThanOrEqual(0.9);
    expect(r.stages[0]!.kind).toBe(spec.kind);
    expect(r.flopsPerQuery).toBeLessThan(exact.flopsPerQuery);
  });

  it('int8 at the full dim with a large shortlist recovers exact search', () => {
    const firstStage = index.quantize({ kind: 'int8', dim: d });
    const r = index.shortlistRerank(data.queries, {
      shortlistDim: d,
      shortlistK: 200,
      rerankDim: d,
      k: 10,
      firstStage,
    });
    expect(recallAtK(r, exact, 10)).toBe(1);
  });

  it('rejects a first stage quantised at another dim', () => {
    const firstStage = index.quantize({ kind: 'binary', dim: 32 });
    expect(() =>
      index.shortlistRerank(data.queries, { shortlistDim: 16, shortlistK: 50, rerankDim: d, k: 10, firstStage }),
    ).toThrow(/firstStage was quantised at dim 32 but shortlistDim is 16/);
  });
});

import { describe, expect, it } from 'vitest';
import { gemmTopK, jsGemm } from '../../src/gemm.js';
import { recallAtK } from '../../src/metrics.js';
import { nativeGemm } from '../../src/node/native-gemm.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { blockedTopK } from '../../src/scoring.js';
import { TopKHeap } from '../../src/topk.js';
import { type Int8Prefix, quantizeBinary, quantizedTopK } from '../../src/quantize.js';
import { clustered, expectClose, gaussian, rng } from '../synthetic.js';

// onnxruntime-node is installed with this repository (an optional dependency of @mrl/core).
const native = nativeGemm();

describe('nativeGemm', () => {
  it('loads ONNX Runtime', () => {
    expect(native?.name).toMatch(/^ONNX Runtime .* \(MLAS\), 1 thread$/);
  });

  it('equals the JS product on views with offsets', () => {
    const g = gaussian(rng(11));
    const a = Float32Array.from({ length: 23 * 40 }, g);
    const b = Float32Array.from({ length: 517 * 40 }, g);
    const want = new Float32Array(20 * 500);
    jsGemm.multiplyTransposed(a.subarray(3 * 40), 20, b.subarray(17 * 40), 500, 40, want);
    const got = new Float32Array(20 * 500 + 9);
    native!.multiplyTransposed(a.subarray(3 * 40), 20, b.subarray(17 * 40), 500, 40, got.subarray(9));
    expectClose(got.subarray(9), want, 1e-4);
    expect(Array.from(got.subarray(0, 9))).toEqual(new Array(9).fill(0));
  });

  it('gives MatryoshkaIndex the same hits as the JS scan, at full dim and at a prefix', () => {
    const d = 96;
    const data = clustered(4000, 50, d, 40, 3);
    const plain = MatryoshkaIndex.fromVectors(data.vectors, { dim: d });
    const fast = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, gemm: native! });
    for (const dim of [d, 24]) {
      const a = fast.search(data.queries, { k: 10, dim });
      const b = plain.search(data.queries, { k: 10, dim });
      expect(recallAtK(a, b, 10)).toBe(1);
      expectClose(a.scores, b.scores, 1e-4);
    }
  });

  it('has the fused product + top-k', () => {
    expect(typeof native?.multiplyTopK).toBe('function');
    expect(typeof native?.multiplyInt8TopK).toBe('function');
    expect(typeof native?.multiplyInt8Transposed).toBe('function');
    expect(typeof native?.hammingTopK).toBe('function');
  });

  it.each([
    [true, 32],
    [false, 32],
    [false, 9],
  ])('fused top-k (rowScale %s, dim %i) equals the JS scan, ties to the lower row across row blocks', (scaled, dim) => {
    // Small integers: every product is exact in float32, so tied scores really tie. Rows 0, 3,
    // 8195 and 8199 are 3 x query 0, the best rows for it (its other scores are at most
    // sum |q0| <= ||q0||^2); 8192-row blocks, so the last block has 8 rows, fewer than k.
    const [nq, nr, stride, k] = [7, 8200, 32, 13];
    const r = rng(21);
    const q = Float32Array.from({ length: nq * stride }, () => Math.floor(r() * 6) - 3 || 1);
    const x = Float32Array.from({ length: nr * stride }, () => Math.floor(r() * 3) - 1);
    const copies = [0, 3, 8195, 8199];
    for (const c of copies) for (let j = 0; j < stride; j++) x[c * stride + j] = 3 * (q[j] as number);
    const scale = scaled ? Float32Array.from({ length: nr }, (_, i) => 1 / (1 + (i % 3))) : undefined;
    const drain = (heaps: TopKHeap[]) => {
      const ids = new Int32Array(nq * k);
      const scores = new Float32Array(nq * k);
      heaps.forEach((h, i) => h.drainInto(ids, scores, i * k));
      return { ids, scores };
    };
    const fused = drain(gemmTopK(native!, q, nq, x, nr, stride, dim, k, scale));
    const reference = drain(blockedTopK({ data: q, rows: nq, stride }, { data: x, rows: nr, stride }, dim, k, scale));
    expect(Array.from(fused.ids)).toEqual(Array.from(reference.ids));
    expectClose(fused.scores, reference.scores, 1e-6);
    if (!scaled) expect(Array.from(fused.ids.subarray(0, 4))).toEqual(copies);
  });

  it('fused top-k refuses k larger than the row block', () => {
    expect(() =>
      native!.multiplyTopK!(
        new Float32Array(4),
        1,
        new Float32Array(8),
        2,
        4,
        3,
        undefined,
        new Float32Array(3),
        new BigInt64Array(3),
      ),
    ).toThrow(/1 <= k <= 2 rows, got k = 3/);
  });

  const drainAll = (heaps: TopKHeap[], k: number) => {
    const ids = new Int32Array(heaps.length * k);
    const scores = new Float32Array(heaps.length * k);
    heaps.forEach((h, i) => h.drainInto(ids, scores, i * k));
    return { ids, scores };
  };

  it.each([
    ['per-dim', false, 13],
    ['per-dim', true, 13],
    ['per-vector', false, 13],
    ['per-vector', true, 13],
    ['per-dim', false, 45],
    ['per-vector', true, 45],
  ] as const)(
    'the int8 first stage (%s, rowScale %s, k %i: native top-k up to 32, else selected in JS) on ONNX Runtime equals the JS scan, ties across row blocks',
    (mode, scaled, k) => {
      // Small integer codes and queries, power-of-two scales: the products are exact in float32,
      // so equal scores really tie. Rows 0, 3, 8195 and 8199 hold query 0's values (clipped),
      // its best rows; the last 8192-row block has 8 rows, fewer than k.
      const [nq, nr, dim, stride] = [7, 8200, 24, 30];
      const r = rng(31);
      const q = Float32Array.from({ length: nq * stride }, () => Math.floor(r() * 7) - 3 || 1);
      const codes = Int8Array.from({ length: nr * dim }, () => Math.floor(r() * 3) - 1);
      const copies = [0, 3, 8195, 8199];
      for (const c of copies) for (let j = 0; j < dim; j++) codes[c * dim + j] = 2 * (q[j] as number);
      const scales =
        mode === 'per-dim'
          ? Float32Array.from({ length: dim }, () => 0.5)
          : Float32Array.from({ length: nr }, (_, i) => (i % 5 === 4 ? 0.25 : 0.5));
      if (mode === 'per-vector') for (const c of copies) scales[c] = 0.5;
      const prefix: Int8Prefix = { kind: 'int8', dim, size: nr, scaleMode: mode, codes, scales };
      const rowScale = scaled ? Float32Array.from({ length: nr }, (_, i) => 1 / (1 + (i % 3))) : undefined;
      const view = { data: q, rows: nq, stride };
      const fused = drainAll(quantizedTopK(prefix, view, k, rowScale, native!), k);
      const reference = drainAll(quantizedTopK(prefix, view, k, rowScale), k);
      expect(Array.from(fused.ids)).toEqual(Array.from(reference.ids));
      expectClose(fused.scores, reference.scores, 1e-6);
      if (!scaled) expect(Array.from(fused.ids.subarray(0, 4))).toEqual(copies);
    },
  );

  it('the binary first stage on ONNX Runtime equals the JS Hamming scan, ties to the lower row', () => {
    // 40 bits: two words, the second one partly padding; Hamming distances tie all the time.
    const [nq, nr, stride, k] = [9, 8300, 48, 25];
    const g = gaussian(rng(41));
    const rows = Float32Array.from({ length: nr * stride }, g);
    const q = Float32Array.from({ length: nq * stride }, g);
    const bits = quantizeBinary({ data: rows, rows: nr, stride }, 40);
    const view = { data: q, rows: nq, stride };
    const fused = drainAll(quantizedTopK(bits, view, k, undefined, native!), k);
    const reference = drainAll(quantizedTopK(bits, view, k), k);
    expect(Array.from(fused.ids)).toEqual(Array.from(reference.ids));
    expect(Array.from(fused.scores)).toEqual(Array.from(reference.scores));
  });

  it('shortlistRerank with an int8 or binary first stage gives the same hits on the native engine', () => {
    const d = 64;
    const data = clustered(9000, 40, d, 60, 5);
    const plain = MatryoshkaIndex.fromVectors(data.vectors, { dim: d });
    const fast = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, gemm: native! });
    for (const spec of [
      { kind: 'int8', dim: 32, scale: 'per-dim' },
      { kind: 'int8', dim: 16, scale: 'per-vector' },
      { kind: 'binary', dim: 64 },
    ] as const) {
      const firstStage = plain.quantize(spec);
      const options = { shortlistDim: spec.dim, shortlistK: 50, rerankDim: d, k: 10, firstStage };
      const a = fast.shortlistRerank(data.queries, options);
      const b = plain.shortlistRerank(data.queries, options);
      expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
      expect(Array.from(a.scores)).toEqual(Array.from(b.scores));
    }
  });

  it('an index on the native GEMM still refuses NaN and Infinity queries, naming the row', () => {
    const d = 16;
    const data = clustered(300, 4, d, 5, 8);
    const fast = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, gemm: native! });
    const q = data.queries.slice();
    q[2 * d + 3] = Number.POSITIVE_INFINITY;
    expect(() => fast.search(q, { k: 5 })).toThrow(/queries row 2 holds Infinity at position 3 \(of 16\)/);
    q[2 * d + 3] = 0;
    q[d + 9] = Number.NaN;
    expect(() => fast.search(q, { k: 5, dim: 8 })).toThrow(/queries row 1 holds NaN at position 9 \(of 16\)/);
  });
});

import { describe, expect, it } from 'vitest';
import { jsGemm } from '../../src/gemm.js';
import { recallAtK } from '../../src/metrics.js';
import { nativeGemm } from '../../src/node/native-gemm.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
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
});

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MrlError } from '@mrl/core/errors';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { rerankKernel } from '../src/rerank-kernel.js';
import { MatryoshkaIndex } from '../src/vector-index.js';
import { clustered, rng } from './synthetic.js';

// The generator that turns src/wasm/*.wat into the committed *.wasm.ts modules.
import { compileWat, moduleText, WASM_DIR } from '../scripts/build-wasm.mjs';

const wasm = rerankKernel('wasm-simd');
const js = rerankKernel('javascript');

/** Both kernels on the same rows; returns their outputs. */
function both(q: Float32Array, x: Float32Array, d: number, m: number, ids: Int32Array): [number[], number[]] {
  const a = new Float64Array(ids.length);
  const b = new Float64Array(ids.length);
  wasm.dots(q, 0, x, d, m, ids, ids.length, a);
  js.dots(q, 0, x, d, m, ids, ids.length, b);
  return [Array.from(a), Array.from(b)];
}

describe('re-rank kernels', () => {
  it('Node has WebAssembly SIMD, so the default kernel is the wasm one', () => {
    expect(rerankKernel().name).toBe('wasm-simd');
    expect(wasm.name).toBe('wasm-simd');
    expect(js.name).toBe('javascript');
  });

  it('wasm SIMD and JavaScript give bit-identical float64 sums at every dim and candidate count', () => {
    const rand = rng(3);
    const d = 67; // rows not 16-byte aligned, a dim that is not a multiple of 4
    const n = 500;
    const x = Float32Array.from({ length: n * d }, () => rand() * 2 - 1);
    const q = Float32Array.from({ length: d }, () => rand() * 2 - 1);
    for (const m of [1, 2, 3, 4, 5, 16, 31, 64, 67]) {
      for (const count of [0, 1, 7, 8, 9, 15, 64, 100]) {
        // Random rows, with repeats and the last row (the end of `x`).
        const ids = Int32Array.from({ length: count }, (_, c) => (c === 0 ? n - 1 : Math.floor(rand() * n)));
        const [a, b] = both(q, x, d, m, ids);
        expect(a, `m=${m} n=${count}`).toEqual(b);
      }
    }
  });

  it('the sums are the dot products: exact on integer-valued data, within float64 rounding otherwise', () => {
    const rand = rng(4);
    const d = 40;
    const n = 50;
    const x = Float32Array.from({ length: n * d }, () => Math.floor(rand() * 201) - 100);
    const q = Float32Array.from({ length: d }, () => Math.floor(rand() * 21) - 10);
    const ids = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
    const [a] = both(q, x, d, d, ids);
    const expected = Array.from(ids, (id) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += (q[j] as number) * (x[id * d + j] as number);
      return s;
    });
    expect(a).toEqual(expected);
    // A non-integer case against a sum in a different order (pairwise halves).
    const xf = Float32Array.from({ length: n * d }, () => rand() - 0.5);
    const [b] = both(q, xf, d, d, ids);
    ids.forEach((id, c) => {
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < d / 2; j++) lo += (q[j] as number) * (xf[id * d + j] as number);
      for (let j = d / 2; j < d; j++) hi += (q[j] as number) * (xf[id * d + j] as number);
      expect(Math.abs((b[c] as number) - (lo + hi))).toBeLessThan(1e-12);
    });
  });

  it('scores a candidate set larger than one call into the module (1 MiB of rows) in chunks, and small ones afterwards', () => {
    const rand = rng(5);
    const d = 256;
    const n = 3000; // 3000 x 256 floats = 3 MiB of gathered rows: three chunks, the last one partial
    const x = Float32Array.from({ length: n * d }, () => rand() - 0.5);
    const q = Float32Array.from({ length: d }, () => rand() - 0.5);
    const all = Int32Array.from({ length: n }, (_, i) => i);
    const [a, b] = both(q, x, d, d, all);
    expect(a).toEqual(b);
    const [c, e] = both(q, x, d, 10, all.subarray(0, 3));
    expect(c).toEqual(e);
  });

  it('an unknown kernel name is one MrlError', () => {
    expect(() => rerankKernel('gpu' as never)).toThrow(
      /re-rank kernel must be 'auto', 'wasm-simd' or 'javascript', got 'gpu'/,
    );
  });
});

describe('MatryoshkaIndex.rerank on both kernels', () => {
  const d = 48;
  const data = clustered(2000, 25, d, 20, 7);
  const index = MatryoshkaIndex.fromVectors(data.vectors, { dim: d });
  const nq = 25;

  it('gives the same ids and scores on either kernel, at full dim and at a prefix, cosine and dot', () => {
    const rand = rng(8);
    const perQuery = 70;
    const candidates = Int32Array.from({ length: nq * perQuery }, (_, i) =>
      i % 13 === 0 ? -1 : Math.floor(rand() * 2000),
    );
    for (const [dim, metric] of [
      [d, 'cosine'],
      [13, 'dot'],
      [32, 'cosine'],
    ] as const) {
      const a = index.rerank(data.queries, candidates, perQuery, { k: 10, dim, metric, kernel: 'wasm-simd' });
      const b = index.rerank(data.queries, candidates, perQuery, { k: 10, dim, metric, kernel: 'javascript' });
      expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
      expect(Array.from(a.scores)).toEqual(Array.from(b.scores));
      expect(a.flops).toBe(b.flops);
    }
  });

  it('with every row as a candidate, each kernel equals exact search exactly', () => {
    const all = new Int32Array(nq * 2000);
    for (let q = 0; q < nq; q++) for (let i = 0; i < 2000; i++) all[q * 2000 + i] = (i * 7919) % 2000;
    const e = index.search(data.queries, { k: 10 });
    for (const kernel of ['wasm-simd', 'javascript'] as const) {
      const r = index.rerank(data.queries, all, 2000, { k: 10, kernel });
      expect(Array.from(r.ids), kernel).toEqual(Array.from(e.ids));
      expect(Array.from(r.scores), kernel).toEqual(Array.from(e.scores));
    }
  });
});

describe('without WebAssembly SIMD', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it("'auto' falls back to the JavaScript loop where WebAssembly is missing, 'wasm-simd' says why it cannot run", async () => {
    vi.resetModules();
    vi.stubGlobal('WebAssembly', undefined);
    const fresh = await import('../src/rerank-kernel.js');
    expect(fresh.rerankKernel('auto').name).toBe('javascript');
    let caught: unknown;
    try {
      fresh.rerankKernel('wasm-simd');
    } catch (e) {
      caught = e;
    }
    expect(MrlError.is(caught)).toBe(true);
    expect((caught as MrlError).message).toMatch(/the wasm SIMD re-rank kernel cannot run here/);
  });

  it("'auto' falls back where the runtime rejects the SIMD module", async () => {
    vi.resetModules();
    const real = globalThis.WebAssembly;
    vi.stubGlobal('WebAssembly', { ...real, validate: () => false, Module: real.Module, Instance: real.Instance });
    const fresh = await import('../src/rerank-kernel.js');
    expect(fresh.rerankKernel().name).toBe('javascript');
  });
});

describe('re-rank kernel source', () => {
  it('the committed rerank.wasm.ts is the compiled form of rerank.wat (run scripts/build-wasm.mjs after editing it)', async () => {
    const source = await readFile(join(WASM_DIR, 'rerank.wat'), 'utf8');
    const compiled = moduleText('rerank', await compileWat(source, 'rerank.wat'));
    expect(await readFile(join(WASM_DIR, 'rerank.wasm.ts'), 'utf8')).toBe(compiled);
  });
});

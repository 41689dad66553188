// The chunked Matryoshka softmax cross-entropy on oneDNN (src/native/onednn_prefix_ce.ts and
// native/onednn_prefix_ce.cc) against the ONNX Runtime graphs that it replaces
// (src/wasm/native_chunked_prefix_softmax.ts with `matmul: 'onnxruntime'`): losses, the saved
// log-sum-exps and all three gradients to 1e-5, with and without a bias, ignored rows, several
// dims lists and chunk sizes (a last partial chunk, one chunk wider than the vocabulary), a
// negative upstream gradient; the same bits run to run on 2 threads; the losses against a
// float64 computation here; and the fallback to ONNX Runtime where the addon is absent (a fresh
// module instance under MRL_ONEDNN=off), which runs here always.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnPrefixCeAvailable } from '../src/native/onednn_prefix_ce.js';
import { loadOnnxRuntimeKernels } from '../src/native/onnxruntime.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { CHUNKED_PREFIX_CE, CHUNKED_PREFIX_CE_GRAD, IGNORE_INDEX } from '../src/wasm/native_chunked_prefix_softmax.js';
import { expectClose, randomArray, withScope } from './helpers/close.js';
import { expectNeedsOneDnn, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

const ort = nativeKernels({ matmul: 'onnxruntime' });
/** The default kernels: the head on oneDNN where the addon loads, else the same as `ort`. */
const auto = nativeKernels();
const two = nativeKernels({ threads: 2 });
const present = oneDnnPrefixCeAvailable();

interface Case {
  name: string;
  rows: number;
  width: number;
  classes: number;
  dims: number[];
  chunk: number;
  bias: boolean;
  /** Rows whose label is IGNORE_INDEX. */
  ignored: number[];
  /** The upstream gradient of each prefix's loss. */
  dy: number[];
}

const CASES: Case[] = [
  {
    name: 'dims up to d, a last partial chunk',
    rows: 9,
    width: 16,
    classes: 37,
    dims: [2, 4, 8, 16],
    chunk: 8,
    bias: true,
    ignored: [],
    dy: [1, 1, 1, 1],
  },
  {
    name: 'dims short of d (columns past the last get no gradient), no bias',
    rows: 7,
    width: 12,
    classes: 50,
    dims: [3, 8],
    chunk: 16,
    bias: false,
    ignored: [],
    dy: [0.5, 2],
  },
  {
    name: 'ignored rows, odd widths, a negative and a zero upstream gradient',
    rows: 11,
    width: 10,
    classes: 23,
    dims: [1, 5, 9],
    chunk: 5,
    bias: true,
    ignored: [0, 4, 10],
    dy: [-0.7, 0, 1.3],
  },
  {
    name: 'one dim equal to d (a plain head), one chunk wider than the vocabulary',
    rows: 6,
    width: 8,
    classes: 19,
    dims: [8],
    chunk: 64,
    bias: true,
    ignored: [2],
    dy: [1],
  },
  {
    name: "BERT-mini's nesting dims over a 3,001-class vocabulary",
    rows: 40,
    width: 256,
    classes: 3001,
    dims: [8, 16, 32, 64, 128, 256],
    chunk: 512,
    bias: true,
    ignored: [3, 17],
    dy: [1, 1, 1, 1, 1, 1],
  },
];

interface Result {
  losses: Float32Array;
  lse: Float32Array;
  dz: Float32Array;
  dw: Float32Array;
  db: Float32Array | null;
}

function inputs(c: Case) {
  const z = randomArray(c.rows * c.width, 1);
  const w = randomArray(c.classes * c.width, 2);
  const b = randomArray(c.classes, 3);
  const labels = Int32Array.from({ length: c.rows }, (_, i) =>
    c.ignored.includes(i) ? IGNORE_INDEX : (i * 7 + 3) % c.classes,
  );
  return { z, w, b, labels };
}

/** Both kernels of `c`, registered on `native`. */
function run(native: NativeKernels, c: Case): Result {
  registerWasmTrainingKernels({ native });
  const { z, w, b, labels } = inputs(c);
  return withScope(() => {
    const attrs = { dims: c.dims, chunk: c.chunk } as unknown as tf.NamedAttrMap;
    const embedding = tf.tensor2d(z, [c.rows, c.width]);
    const weight = tf.tensor2d(w, [c.classes, c.width]);
    const bias = c.bias ? { bias: tf.tensor1d(b) } : {};
    const labelIds = tf.tensor1d(labels, 'int32');
    const [losses, lse] = tf
      .engine()
      .runKernel(CHUNKED_PREFIX_CE, { embedding, weight, labels: labelIds, ...bias }, attrs) as tf.Tensor[];
    const grads = tf
      .engine()
      .runKernel(
        CHUNKED_PREFIX_CE_GRAD,
        { dy: tf.tensor1d(c.dy), lse: lse!, labels: labelIds, embedding, weight, ...bias },
        attrs,
      ) as tf.Tensor[];
    return {
      losses: losses!.dataSync() as Float32Array,
      lse: lse!.dataSync() as Float32Array,
      dz: grads[0]!.dataSync() as Float32Array,
      dw: grads[1]!.dataSync() as Float32Array,
      db: c.bias ? (grads[2]!.dataSync() as Float32Array) : null,
    };
  });
}

function expectSame(got: Result, want: Result, tol: number): void {
  expectClose(got.losses, want.losses, tol);
  expectClose(got.lse, want.lse, tol);
  expectClose(got.dz, want.dz, tol);
  expectClose(got.dw, want.dw, tol);
  if (want.db === null) expect(got.db).toBeNull();
  else expectClose(got.db!, want.db, tol);
}

/** Bit equality of two float arrays. */
/** Each prefix's mean cross-entropy over the kept rows, in float64. */
function referenceLosses(c: Case): number[] {
  const { z, w, b, labels } = inputs(c);
  return c.dims.map((m) => {
    let total = 0;
    let kept = 0;
    for (let i = 0; i < c.rows; i++) {
      if (labels[i] === IGNORE_INDEX) continue;
      const logits = Array.from({ length: c.classes }, (_, y) => {
        let s = c.bias ? b[y]! : 0;
        for (let t = 0; t < m; t++) s += z[i * c.width + t]! * w[y * c.width + t]!;
        return s;
      });
      const hi = Math.max(...logits);
      const lse = hi + Math.log(logits.reduce((s, l) => s + Math.exp(l - hi), 0));
      total += lse - logits[labels[i]!]!;
      kept += 1;
    }
    return total / kept;
  });
}

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('the chunked head on oneDNN: used where the addon is built, ONNX Runtime where it is not', () => {
  it('loads with the products wherever setup can build the addon, and never with matmul onnxruntime', () => {
    if (ONEDNN_BUILDABLE) {
      expect(present, 'libdnnl-dev is installed: run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    }
    expect(auto.prefixCe !== undefined).toBe(present);
    if (present) expect(auto.detail).toMatch(/the chunked Matryoshka head too/);
    expect(ort.prefixCe).toBeUndefined();
    expect(ort.detail).not.toMatch(/chunked Matryoshka head/);
  });

  it('chunkedHead picks the source whatever runs the products', () => {
    expect(nativeKernels({ chunkedHead: 'onnxruntime' }).prefixCe).toBeUndefined();
    if (present) expect(nativeKernels({ matmul: 'onnxruntime', chunkedHead: 'onednn' }).prefixCe).toBeDefined();
  });

  it('refuses an unknown chunkedHead source, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ chunkedHead: 'mkl' as 'onednn' })).toThrow(
      'chunkedHead must be one of onednn, onnxruntime, got "mkl".',
    );
  });

  it('without the addon: the ONNX Runtime graphs run, with the same bits as matmul onnxruntime', async () => {
    const c = CASES[2]!;
    const want = run(ort, c);
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.prefixCe).toBeUndefined();
      expect(fallback.detail).not.toMatch(/oneDNN/);
      const got = run(fallback, c);
      for (const key of ['losses', 'lse', 'dz', 'dw', 'db'] as const)
        expect(sameBits(got[key]!, want[key]!)).toBe(true);
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ chunkedHead: 'onednn' }),
        "chunkedHead 'onednn' needs the oneDNN addon with the chunked head (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates it or is turned off (MRL_ONEDNN=off).",
      );
    });
  });

  it('an addon built before the head: the products on oneDNN, the head on ONNX Runtime', async () => {
    try {
      vi.resetModules();
      vi.doMock('../src/native/onednn.js', () => ({ loadAddon: () => ({ version: () => '2.6.3' }) }));
      const fresh = await import('../src/native/onednn_prefix_ce.js');
      expect(fresh.oneDnnPrefixCeAvailable()).toBe(false);
      expect(fresh.loadOneDnnPrefixCe({ threads: 1 })).toBeUndefined();
      expect(() => fresh.loadOneDnnPrefixCe({ threads: 1, required: true })).toThrow(/predates it/);
    } finally {
      vi.doUnmock('../src/native/onednn.js');
      vi.resetModules();
    }
  });
});

// Where the addon is absent `auto` is ONNX Runtime, and these compare it with itself.
describe.each(CASES)('$name', (c) => {
  it('equals the ONNX Runtime graphs to 1e-5: losses, log-sum-exps and the three gradients', () => {
    expectSame(run(auto, c), run(ort, c), 1e-5);
  });

  it('gives the losses of a float64 computation', () => {
    expectClose(run(auto, c).losses, referenceLosses(c), 1e-5);
  });
});

describe('on 2 threads', () => {
  it('equals ONNX Runtime to 1e-5 and gives the same bits run to run', () => {
    const c = CASES[4]!;
    const first = run(two, c);
    expectSame(first, run(ort, c), 1e-5);
    if (present) {
      // The forward merges each chunk's sums in chunk order, whichever thread ran the chunk.
      const one = run(auto, c);
      expect(sameBits(first.lse, one.lse) && sameBits(first.losses, one.losses)).toBe(true);
    }
    for (let r = 0; r < 2; r++) {
      const again = run(two, c);
      for (const key of ['losses', 'lse', 'dz', 'dw', 'db'] as const) {
        expect(sameBits(again[key]!, first[key]!), key).toBe(true);
      }
    }
  });
});

describe('the addon refuses bad arguments, naming them', () => {
  interface Raw {
    prefixCeForward(dims: Int32Array, z: Float32Array, w: Float32Array, b: Float32Array, lse: Float64Array): void;
  }
  const refuses = (dims: number[], z: number, w: number, b: number, lse: number, message: string): void => {
    if (!present) {
      expect(ONEDNN_BUILDABLE).toBe(false);
      return;
    }
    const raw = loadAddon() as unknown as Raw;
    const f = (n: number): Float32Array => new Float32Array(n);
    expect(() => raw.prefixCeForward(Int32Array.from(dims), f(z), f(w), f(b), new Float64Array(lse))).toThrow(message);
  };

  it('an array whose length does not match the problem', () => {
    refuses([1, 2, 4, 5, 3, 1, 4], 8, 19, 0, 2, 'onednn: prefixCeForward w has 19 entries, not 20');
  });
  it('dims that do not ascend within the width', () => {
    refuses([1, 2, 4, 5, 3, 2, 3, 3], 8, 20, 0, 4, 'onednn: prefixCeForward dims must ascend within 1..width');
  });
  it('an empty problem (it stays in the caller)', () => {
    refuses(
      [1, 0, 4, 5, 3, 1, 4],
      0,
      20,
      0,
      0,
      'onednn: prefixCeForward threads, rows, width, classes and chunk must be positive (empty problems stay in the caller)',
    );
  });
});

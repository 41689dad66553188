// Transpose, SplitV, Concat and Slice on the oneDNN addon's threads (src/wasm/native_layout.ts):
// the same bits as the kernels they replace (the shipped wasm kernels, ONNX Runtime's Split for
// SplitV) and as the cpu backend, at 1, 2 and 3 threads, on the profiled ViT-tiny and BERT-mini shapes and odd ones (size-1 axes, rank 6, a
// moved innermost axis, negative axes, runs longer than a work unit); that the addon really runs
// them; every fallback (small or empty tensors, int32, no addon); and the addon's own checks.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { LAYOUT_THRESHOLD } from '../src/wasm/native_layout.js';
import { randomArray, withScope } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';

const LAYOUT = ['transpose', 'slice', 'splitRows', 'concatRows'] as const;
const counted = (native: NativeKernels, label: string) => countedNative(native, label, 'batchNorm', LAYOUT);

const present = oneDnnBatchNormAvailable();

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

/** Distinct floats with a NaN, -0 and an infinity among them: a copy must move their bits. */
function values(n: number, seed: number): Float32Array {
  const x = randomArray(n, seed);
  if (n > 3) {
    x[1] = Number.NaN;
    x[2] = -0;
    x[3] = Number.NEGATIVE_INFINITY;
  }
  return x;
}

type Out = { shape: number[]; bits: Uint32Array }[];

/** The outputs of `op` on the inputs [shape, seed] on the active backend: shapes and bits. */
function outputs(op: (xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[], inputs: [number[], number][]): Out {
  return withScope(() => {
    const xs = inputs.map(([shape, seed]) => tf.tensor(values(tf.util.sizeFromShape(shape), seed), shape));
    const got = op(xs);
    return (Array.isArray(got) ? got : [got]).map((t) => {
      // The cpu backend's int32 -> float32 cast keeps an Int32Array.
      const d = t.dataSync();
      const v = d instanceof Float32Array ? d.slice() : Float32Array.from(d as Int32Array);
      return { shape: t.shape, bits: new Uint32Array(v.buffer) };
    });
  });
}

/** Same shapes and bits; NaN payloads included (copies keep them). */
function expectSame(got: Out, want: Out, what: string): void {
  expect(got.map((o) => o.shape)).toEqual(want.map((o) => o.shape));
  got.forEach((o, k) => {
    const w = want[k]!.bits;
    const at = o.bits.findIndex((b, i) => b !== w[i]);
    expect(at, `${what}: output ${k} differs first at value ${at}`).toBe(-1);
  });
}

interface Case {
  name: string;
  inputs: [number[], number][];
  op: (xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
  /** Addon calls expected at 2 threads or more. */
  calls: number;
}

/** Distinct int32 values (a cast from floats is not the same on every backend). */
const ints = (shape: number[]) => tf.range(0, tf.util.sizeFromShape(shape), 1, 'int32').reshape(shape);

const t = (perm: number[]) => (xs: tf.Tensor[]) => tf.transpose(xs[0]!, perm);

const CASES: Case[] = [
  // ViT-tiny (batch 16, 65 tokens, 3 heads of 64): heads out of and into [B, T, H, dh], q|k|v.
  { name: 'Transpose [16,65,9,64] perm [0,2,1,3]', inputs: [[[16, 65, 9, 64], 1]], op: t([0, 2, 1, 3]), calls: 1 },
  { name: 'Transpose [16,3,65,64] perm [0,2,1,3]', inputs: [[[16, 3, 65, 64], 2]], op: t([0, 2, 1, 3]), calls: 1 },
  // BERT-mini: k transposed back ([8,4,64,128] -> [8,4,128,64]): a batched 2-D transpose.
  { name: 'Transpose [8,4,64,128] perm [0,1,3,2]', inputs: [[[8, 4, 64, 128], 3]], op: t([0, 1, 3, 2]), calls: 1 },
  { name: 'Transpose [300,257] perm [1,0]', inputs: [[[300, 257], 4]], op: t([1, 0]), calls: 1 },
  { name: 'Transpose [2,200,300] perm [1,2,0]', inputs: [[[2, 200, 300], 5]], op: t([1, 2, 0]), calls: 1 },
  {
    name: 'Transpose [3,1,37,5,131] perm [4,2,1,0,3] (a size-1 axis, the innermost moved)',
    inputs: [[[3, 1, 37, 5, 131], 6]],
    op: t([4, 2, 1, 0, 3]),
    calls: 1,
  },
  {
    name: 'Transpose [4,5,6,7,8,11] perm [5,3,1,0,2,4] (rank 6)',
    inputs: [[[4, 5, 6, 7, 8, 11], 7]],
    op: t([5, 3, 1, 0, 2, 4]),
    calls: 1,
  },
  {
    name: 'Transpose [2,3,5,7,11,31] perm [2,3,0,1,4,5] (merged to [2*3, 5*7, 11*31] perm [1,0,2])',
    inputs: [[[2, 3, 5, 7, 11, 31], 8]],
    op: t([2, 3, 0, 1, 4, 5]),
    calls: 1,
  },
  {
    name: 'Transpose [1,70000,1] perm [2,1,0] (only size-1 axes move: one copy)',
    inputs: [[[1, 70000, 1], 9]],
    op: t([2, 1, 0]),
    calls: 1,
  },
  {
    name: 'SplitV [16,9,65,64] into 3 on axis 1 (q, k, v)',
    inputs: [[[16, 9, 65, 64], 10]],
    op: (xs) => tf.split(xs[0]!, 3, 1),
    calls: 1,
  },
  {
    name: 'SplitV [1024,256] into [8,8,16,32,-1] on axis -1 (prefix chunks)',
    inputs: [[[1024, 256], 11]],
    op: (xs) => tf.split(xs[0]!, [8, 8, 16, 32, -1], -1),
    calls: 1,
  },
  {
    name: 'SplitV [3,50000] into [20000,30000] on axis -1 (runs longer than a work unit)',
    inputs: [[[3, 50000], 12]],
    op: (xs) => tf.split(xs[0]!, [20000, 30000], -1),
    calls: 1,
  },
  {
    name: 'SplitV [100,7,100] into [30,70] on axis 0',
    inputs: [[[100, 7, 100], 13]],
    op: (xs) => tf.split(xs[0]!, [30, 70], 0),
    calls: 1,
  },
  {
    name: 'Concat 3x[16,3,65,64] on axis 1 (the heads of q, k, v gradients)',
    inputs: [
      [[16, 3, 65, 64], 14],
      [[16, 3, 65, 64], 15],
      [[16, 3, 65, 64], 16],
    ],
    op: (xs) => tf.concat(xs, 1),
    calls: 1,
  },
  {
    name: 'Concat [1024,100] and [1024,156] on axis -1',
    inputs: [
      [[1024, 100], 17],
      [[1024, 156], 18],
    ],
    op: (xs) => tf.concat(xs, -1),
    calls: 1,
  },
  {
    name: 'Concat [40000,1], [30000,1], [7,1] on axis 0 (one row: pieces of the runs)',
    inputs: [
      [[40000, 1], 19],
      [[30000, 1], 20],
      [[7, 1], 21],
    ],
    op: (xs) => tf.concat(xs, 0),
    calls: 1,
  },
  {
    name: 'Slice [1024,256] to [1024,64] (a Matryoshka prefix)',
    inputs: [[[1024, 256], 22]],
    op: (xs) => tf.slice(xs[0]!, [0, 0], [-1, 64]),
    calls: 1,
  },
  {
    name: 'Slice [4,100,300] from [1,2,7] size [3,90,250]',
    inputs: [[[4, 100, 300], 23]],
    op: (xs) => tf.slice(xs[0]!, [1, 2, 7], [3, 90, 250]),
    calls: 1,
  },
  {
    name: 'Slice [100000] from 5 size 70000 (one run)',
    inputs: [[[100000], 24]],
    op: (xs) => tf.slice(xs[0]!, [5], [70000]),
    calls: 1,
  },
  {
    name: 'Slice [2,3,120,200] row 1 of axis 0, all the rest (inner axes merged)',
    inputs: [[[2, 3, 120, 200], 25]],
    op: (xs) => tf.slice(xs[0]!, [1, 0, 0, 0], [1, -1, -1, -1]),
    calls: 1,
  },
  // Fallbacks at any thread count: small, empty, int32, identity permutations.
  { name: 'Transpose [16,65,3,4] (small)', inputs: [[[16, 65, 3, 4], 26]], op: t([0, 2, 1, 3]), calls: 0 },
  { name: 'Transpose [300,257] perm [0,1] (no move)', inputs: [[[300, 257], 27]], op: t([0, 1]), calls: 0 },
  {
    name: 'Transpose int32 [256,257]',
    inputs: [[[256, 257], 28]],
    op: () => tf.transpose(ints([256, 257]), [1, 0]).toFloat(),
    calls: 0,
  },
  {
    name: 'SplitV [1024,256] with an empty part, and int32',
    inputs: [[[1024, 256], 29]],
    op: (xs) => [...tf.split(xs[0]!, [0, 100, 156], 1), ...tf.split(ints([1024, 256]), 2, 1).map((p) => p.toFloat())],
    calls: 0,
  },
  {
    name: 'Concat with an empty input, int32, and small',
    inputs: [
      [[1024, 100], 30],
      [[1024, 0], 31],
      [[4, 100], 32],
    ],
    op: (xs) => [
      tf.concat([xs[0]!, xs[1]!, xs[0]!], 1),
      tf.concat([ints([1024, 100]), ints([1024, 100])], 0).toFloat(),
      tf.concat([xs[2]!, xs[2]!], 0),
    ],
    calls: 0,
  },
  {
    name: 'Slice int32 [1024,256] and small',
    inputs: [[[1024, 256], 33]],
    op: (xs) => [tf.slice(ints([1024, 256]), [0, 3], [-1, 100]).toFloat(), tf.slice(xs[0]!, [0, 3], [10, 100])],
    calls: 0,
  },
];

describe('Transpose, SplitV, Concat and Slice on the addon', () => {
  it('are on the addon wherever setup can build it', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  it('the cases large enough for the addon are over the threshold, the small ones under', () => {
    for (const c of CASES) {
      if (c.calls === 0) continue;
      const n = tf.tidy(() => {
        const got = c.op(c.inputs.map(([shape]) => tf.zeros(shape)));
        return (Array.isArray(got) ? got : [got]).reduce((s, o) => s + o.size, 0);
      });
      expect(n, c.name).toBeGreaterThanOrEqual(LAYOUT_THRESHOLD);
    }
    expect(16 * 65 * 3 * 4).toBeLessThan(LAYOUT_THRESHOLD);
  });

  it("the addon's copies at 1, 2 and 3 threads: the cpu backend's bits (threads forced on small arrays)", async () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<string, (...args: unknown[]) => void>;
    const i32 = (v: readonly number[]): Int32Array => Int32Array.from(v);
    const bits = (v: Float32Array): number[] => Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length));
    await tf.setBackend('cpu');
    const check = (what: string, want: Float32Array[], run: (threads: number) => Float32Array[]): void => {
      for (const threads of [1, 2, 3]) {
        expect(run(threads).map(bits), `${what} at ${threads} threads`).toEqual(want.map(bits));
      }
    };
    const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);
    for (const [shape, perm] of [
      [
        [3, 1, 37, 5, 131],
        [4, 2, 1, 0, 3],
      ],
      [
        [4, 5, 6, 7, 8, 11],
        [5, 3, 1, 0, 2, 4],
      ],
      [
        [2, 3, 5, 7, 11, 31],
        [2, 3, 0, 1, 4, 5],
      ],
      [
        [300, 257],
        [1, 0],
      ],
      [
        [1, 70000, 1],
        [2, 1, 0],
      ],
      [
        [16, 3, 65, 64],
        [0, 2, 1, 3],
      ],
      [
        [1024, 128, 2],
        [1, 0, 2],
      ],
    ] as const) {
      const x = values(size(shape), 60);
      const want = tf.tidy(() => tf.transpose(tf.tensor(x, [...shape]), [...perm]).dataSync() as Float32Array);
      check(`transpose [${shape}] by [${perm}]`, [want], (threads) => {
        const y = new Float32Array(x.length);
        raw['transpose']!(threads, x, i32(shape), i32(perm), y);
        return [y];
      });
    }
    for (const [shape, begin, sizes] of [
      [
        [4, 100, 300],
        [1, 2, 7],
        [3, 90, 250],
      ],
      [[100000], [5], [70000]],
      [
        [2, 3, 120, 200],
        [1, 0, 0, 0],
        [1, 3, 120, 200],
      ],
      [
        [1024, 256],
        [0, 0],
        [1024, 64],
      ],
    ] as const) {
      const x = values(size(shape), 61);
      const want = tf.tidy(() => tf.slice(tf.tensor(x, [...shape]), [...begin], [...sizes]).dataSync() as Float32Array);
      check(`slice [${shape}] at [${begin}] of [${sizes}]`, [want], (threads) => {
        const y = new Float32Array(size(sizes));
        raw['slice']!(threads, x, i32(shape), i32(begin), i32(sizes), y);
        return [y];
      });
    }
    for (const [shape, axis, sizes] of [
      [[3, 50000], 1, [20000, 30000]],
      [[100, 7, 100], 0, [30, 70]],
      [[1024, 256], 1, [8, 8, 16, 32, 192]],
      [[16, 9, 65, 64], 1, [3, 3, 3]],
    ] as const) {
      const x = values(size(shape), 62);
      const outer = size(shape.slice(0, axis));
      const parts = tf.tidy(() =>
        tf.split(tf.tensor(x, [...shape]), [...sizes], axis).map((t) => t.dataSync() as Float32Array),
      );
      check(`splitRows [${shape}] on axis ${axis}`, parts, (threads) => {
        const got = parts.map((p) => new Float32Array(p.length));
        raw['splitRows']!(threads, x, outer, got);
        return got;
      });
      check(`concatRows to [${shape}] on axis ${axis}`, [x], (threads) => {
        const y = new Float32Array(x.length);
        raw['concatRows']!(threads, parts, outer, y);
        return [y];
      });
    }
    await tf.setBackend('wasm');
  });

  for (const c of CASES) {
    it(`${c.name}: the cpu backend's bits, on the addon at 1, 2 and 3 threads`, async () => {
      if (!present) return;
      for (const threads of [1, 2, 3]) {
        // Other values at each thread count: an output left in freed heap memory by the run
        // before (the same bits) cannot pass for this run's.
        const inputs = c.inputs.map(([shape, seed]): [number[], number] => [shape, seed + 1000 * threads]);
        await tf.setBackend('cpu');
        const cpu = outputs(c.op, inputs);
        await tf.setBackend('wasm');
        const { native, calls } = counted(nativeKernels({ threads }), `layout test ${threads}, ${c.name}`);
        registerWasmTrainingKernels({ native });
        const before = tf.memory().numTensors;
        expectSame(outputs(c.op, inputs), cpu, `the addon at ${threads} thread(s)`);
        expect(tf.memory().numTensors).toBe(before);
        expect(calls()).toBe(c.calls);
      }
    });
  }

  it("attention's head split and merge, and its gradient: the bits of the kernels replaced, at 2 threads", () => {
    if (!present) return;
    // ViT-tiny's shapes: qkv [16, 65, 576] -> [16, 65, 9, 64] -> [16, 9, 65, 64] -> q, k, v; the
    // heads back to [16, 65, 192]; a prefix slice. The gradient runs Transpose, Concat, Slice's
    // pad and SplitV's concat the other way.
    const qkv = randomArray(16 * 65 * 576, 50);
    const w = randomArray(16 * 65 * 192, 51);
    /** The sliced prefix and the gradient of sum(prefix w) with respect to qkv. */
    const forwardAndGrad = (): Float32Array[] =>
      tf.tidy(() => {
        const prefixOf = (x: tf.Tensor): tf.Tensor => {
          const heads = tf.transpose(tf.reshape(x, [16, 65, 9, 64]), [0, 2, 1, 3]);
          const [q, k, v] = tf.split(heads, 3, 1);
          const mixed = tf.concat([tf.mul(q!, 2), tf.add(k!, v!), v!], 1);
          const merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [16 * 65, 576]);
          return tf.slice(merged, [0, 0], [-1, 192]);
        };
        const x = tf.tensor(qkv, [16, 65, 576]);
        const weights = tf.tensor(w, [16 * 65, 192]);
        const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(prefixOf(t), weights)))(x);
        return [prefixOf(x), grad].map((t) => (t.dataSync() as Float32Array).slice());
      });
    // The reference: 2 threads without the addon's kernels.
    const shipped = nativeKernels({ threads: 2, batchNorm: 'wasm' });
    expect(shipped.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native: shipped });
    const [prefix1, grad1] = forwardAndGrad();
    const two = counted(nativeKernels({ threads: 2 }), 'layout attention test 2');
    registerWasmTrainingKernels({ native: two.native });
    const [prefix2, grad2] = forwardAndGrad();
    expect(two.calls()).toBeGreaterThanOrEqual(10); // 2 transposes, split, concat, slice each way
    expect(new Uint32Array(prefix2!.buffer)).toEqual(new Uint32Array(prefix1!.buffer));
    expect(new Uint32Array(grad2!.buffer)).toEqual(new Uint32Array(grad1!.buffer));
    expect(grad1!.some((g) => g !== 0)).toBe(true);
  });

  it('the addon refuses bad shapes, permutations and lengths', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as Record<string, (...args: unknown[]) => void>;
    const f = (n: number): Float32Array => new Float32Array(n);
    const i = (...v: number[]): Int32Array => Int32Array.from(v);
    expect(() => raw['transpose']!(2, f(6), i(2, 3), i(0, 0), f(6))).toThrow(
      "onednn: transpose perm is not a permutation of the shape's axes",
    );
    expect(() => raw['transpose']!(2, f(6), i(2, 3), i(1, 0), f(5))).toThrow(
      'onednn: transpose y has 5 values, expected 6',
    );
    expect(() => raw['transpose']!(2, f(6), i(2, 3), i(1, 0, 2), f(6))).toThrow(
      'onednn: transpose perm has 3 values, expected 2',
    );
    expect(() => raw['transpose']!(0, f(6), i(2, 3), i(1, 0), f(6))).toThrow(
      'onednn: transpose takes (threads >= 1, x, shape, perm, y)',
    );
    expect(() => raw['slice']!(2, f(6), i(2, 3), i(1, 1), i(1, 3), f(3))).toThrow(
      'onednn: slice axis 1 takes 1 + 3 of 3 values',
    );
    expect(() =>
      raw['slice']!(
        2,
        f(1),
        i(1, 1, 1, 1, 1, 1, 1, 1, 1),
        i(0, 0, 0, 0, 0, 0, 0, 0, 0),
        i(1, 1, 1, 1, 1, 1, 1, 1, 1),
        f(1),
      ),
    ).toThrow('onednn: slice shape has rank 9, 1 to 8');
    expect(() => raw['transpose']!(2, f(1), i(1, 1, 1, 1, 1, 1, 1, 1, 1), i(0, 1, 2, 3, 4, 5, 6, 7, 8), f(1))).toThrow(
      'onednn: transpose shape has rank 9, at most 8',
    );
    expect(() => raw['splitRows']!(2, f(12), 4, [f(4), f(6)])).toThrow(
      'onednn: splitRows part 1 has 6 values, not a multiple of outer 4',
    );
    expect(() => raw['splitRows']!(2, f(12), 2, [f(4), f(6)])).toThrow(
      'onednn: splitRows x has 12 values, expected 10',
    );
    expect(() => raw['concatRows']!(2, [f(4)], 0, f(4))).toThrow(
      'onednn: concatRows takes (threads >= 1, parts[], outer >= 1, y)',
    );
  });

  it('without the addon the kernels replaced run (kernels without batch norm)', () => {
    const native = nativeKernels({ batchNorm: 'wasm', threads: 2 });
    expect(native.batchNorm).toBeUndefined();
    registerWasmTrainingKernels({ native });
    const x = values(16 * 65 * 9 * 64, 40);
    const got = tf.tidy(() => tf.transpose(tf.tensor(x, [16, 65, 9, 64]), [0, 2, 1, 3]).dataSync() as Float32Array);
    // A spot check against the index arithmetic: y[b, h, t, d] = x[b, t, h, d].
    for (const [b, h, tok, d] of [
      [0, 0, 0, 0],
      [15, 8, 64, 63],
      [3, 5, 17, 40],
    ] as const) {
      expect(Object.is(got[((b * 9 + h) * 65 + tok) * 64 + d], x[((b * 65 + tok) * 9 + h) * 64 + d])).toBe(true);
    }
  });
});

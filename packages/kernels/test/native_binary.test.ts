// Multiply, Sub, the Add broadcasts and the sums over any axes on the oneDNN addon's threads
// (src/wasm/native_binary.ts, native/binary.cc). Products and differences: to the bit against the
// shipped wasm kernels (one thread, where they stay), IEEE float32 arithmetic done here and the
// cpu backend, on the transformers' shapes in both operand orders, at 2 and 3 threads. Sums:
// against a float64 sum (a relative bound: their order is not ONNX Runtime's), to the bit against
// a model of each kernel's order written here (float32 lanes and partials, double where the
// kernel adds in double), the same bits at 1, 2 and 3 threads and at several heap addresses, and
// infinities and NaN as ONNX Runtime's sums give them. Also that the addon really runs
// (countedNative) and every fallback (products at one thread, other broadcasts, other dtypes,
// small tensors).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { loadOneDnnBatchNorm, oneDnnBatchNormAvailable } from '../src/native/onednn_batch_norm.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import { broadcastPlan, sumSteps } from '../src/wasm/native_binary.js';
import { SIZE_THRESHOLD } from '../src/wasm/native_sum.js';
import { randomArray } from './helpers/close.js';
import { countedNative, nativeKernels, ONEDNN_BUILDABLE } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

const present = oneDnnBatchNormAvailable();

/** `native` with the addon kernels of this file counted (see countedNative). */
const counted = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['broadcastBinary', 'sumLeading', 'sumLast', 'sumMiddle', 'sumAll']);
/** Same, for native_add.ts's kernels, which Add still uses for same shapes and rows. */
const countedAdd = (native: NativeKernels, label: string) =>
  countedNative(native, label, 'batchNorm', ['add', 'addRows']);

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels());

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

type Op = 'mul' | 'sub' | 'add';
const OPS = { mul: tf.mul, sub: tf.sub, add: tf.add } as const;
const F64 = {
  mul: (u: number, v: number) => u * v,
  sub: (u: number, v: number) => u - v,
  add: (u: number, v: number) => u + v,
};

/** Inputs for a case: seeded values with an exact zero, -0 and an infinity in the larger one. */
function operands(aShape: readonly number[], bShape: readonly number[], seed: number): [Float32Array, Float32Array] {
  const a = randomArray(size(aShape), seed);
  const b = randomArray(size(bShape), seed + 1);
  const large = a.length >= b.length ? a : b;
  large[3] = Number.POSITIVE_INFINITY;
  large[4] = -0;
  large[5] = 0;
  return [a, b];
}

const run = (op: Op, a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[]) =>
  tf.tidy(() => {
    const y = OPS[op](tf.tensor(a, [...aShape]), tf.tensor(b, [...bShape]));
    return { shape: y.shape, values: y.dataSync() as Float32Array };
  });

/** a op b in float64, each value rounded once to float32 (IEEE float32 arithmetic, as the cpu backend). */
function reference(op: Op, a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[]) {
  const shape = tf.backend_util.assertAndGetBroadcastShape([...aShape], [...bShape]);
  const rank = shape.length;
  const strides = (s: readonly number[]): number[] => {
    const padded = [...new Array<number>(rank - s.length).fill(1), ...s];
    const out = new Array<number>(rank).fill(0);
    let step = 1;
    for (let k = rank - 1; k >= 0; k--) {
      out[k] = padded[k] === 1 ? 0 : step;
      step *= padded[k]!;
    }
    return out;
  };
  const sa = strides(aShape);
  const sb = strides(bShape);
  const y = new Float32Array(size(shape));
  const index = new Array<number>(rank).fill(0);
  for (let j = 0; j < y.length; j++) {
    let ia = 0;
    let ib = 0;
    for (let k = 0; k < rank; k++) {
      ia += index[k]! * sa[k]!;
      ib += index[k]! * sb[k]!;
    }
    y[j] = Math.fround(F64[op](a[ia]!, b[ib]!));
    for (let k = rank - 1; k >= 0; k--) {
      index[k]!++;
      if (index[k]! < shape[k]!) break;
      index[k] = 0;
    }
  }
  return y;
}

describe('broadcastPlan', () => {
  it('reads each broadcast of the transformers as [outer, middle, inner]', () => {
    const plan = (a: number[], b: number[]) => {
      const p = broadcastPlan(a, b);
      return p === undefined ? undefined : [p.outer, p.middle, p.inner, p.aLarger];
    };
    expect(plan([48, 65, 65], [48, 65, 65])).toEqual([1, 1, 202800, true]);
    expect(plan([48, 65, 65], [])).toEqual([1, 202800, 1, true]);
    expect(plan([1, 1], [48, 65, 65])).toEqual([1, 202800, 1, false]);
    expect(plan([1024, 256], [256])).toEqual([1, 1024, 256, true]);
    expect(plan([1, 1, 256], [4, 256, 256])).toEqual([1, 1024, 256, false]);
    expect(plan([48, 65, 1], [48, 65, 65])).toEqual([3120, 65, 1, false]);
    expect(plan([8, 4, 128, 128], [8, 1, 1, 128])).toEqual([8, 512, 128, true]);
    expect(plan([8, 4, 128, 128], [8, 4, 128, 1])).toEqual([4096, 128, 1, true]);
    expect(plan([1024, 1], [1, 256])).toBeUndefined(); // both broadcast
    expect(plan([4, 64, 257], [64, 1])).toBeUndefined(); // broadcast, kept, broadcast
    expect(plan([4, 5], [3])).toBeUndefined(); // incompatible
  });
});

// [op, a shape, b shape]: the profiled calls of ViT-tiny (batch 16) and BERT-mini (batch 8),
// each also with its operands swapped.
const CASES: ReadonlyArray<readonly [Op, readonly number[], readonly number[]]> = [
  ['mul', [48, 65, 65], []],
  ['mul', [48, 65, 65], [48, 65, 65]],
  ['mul', [48, 65, 1], [48, 65, 65]],
  ['mul', [1024, 256], [1024, 256]],
  ['mul', [8, 4, 128, 1], [8, 4, 128, 128]],
  ['mul', [1040, 192], [1, 192]],
  ['sub', [48, 65, 65], [48, 65, 65]],
  ['sub', [48, 65, 65], [48, 65, 1]],
  ['sub', [1024, 256], []],
  ['sub', [1040, 192], [192]],
  ['add', [1024, 256], []],
  ['add', [8, 4, 128, 128], [8, 1, 1, 128]],
  ['add', [48, 65, 65], [48, 65, 1]],
];

describe('Multiply, Sub and the Add broadcasts on the addon', () => {
  it('are registered wherever setup can build the addon', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
  });

  for (const [op, s1, s2] of CASES) {
    for (const [aShape, bShape] of [
      [s1, s2],
      [s2, s1],
    ] as const) {
      it(`${op} [${aShape.join(', ')}], [${bShape.join(', ')}]: the shipped kernel's bits at 2 and 3 threads`, () => {
        if (!present) return;
        const [a, b] = operands(aShape, bShape, 7 * aShape.length + bShape.length);
        registerWasmTrainingKernels({ native: nativeKernels({ threads: 1 }) });
        const shipped = run(op, a, aShape, b, bShape);
        const want = reference(op, a, aShape, b, bShape);
        expect(sameBits(shipped.values, want)).toBe(true);
        const plan = broadcastPlan(aShape, bShape)!;
        // Add's same-shape and row cases are native_add.ts's.
        const addCase = op === 'add' && (plan.middle === 1 || (plan.outer === 1 && plan.inner > 1));
        for (const threads of [2, 3]) {
          const label = `binary ${op} ${threads} ${aShape.join('x')} ${bShape.join('x')}`;
          const { native, calls } = counted(nativeKernels({ threads }), label);
          registerWasmTrainingKernels({ native });
          const got = run(op, a, aShape, b, bShape);
          expect(calls()).toBe(addCase ? 0 : 1);
          expect(got.shape).toEqual(shipped.shape);
          expect(sameBits(got.values, shipped.values)).toBe(true);
        }
      });
    }
  }

  it('agrees with the cpu backend to the bit (the softmax gradient column, a scalar difference)', async () => {
    if (!present) return;
    registerWasmTrainingKernels({ native: nativeKernels({ threads: 2 }) });
    const [a, b] = operands([48, 65, 65], [48, 65, 1], 3);
    const compute = () =>
      tf.tidy(() => {
        const x = tf.tensor(a, [48, 65, 65]);
        const column = tf.tensor(b, [48, 65, 1]);
        return [
          tf.mul(column, x).dataSync() as Float32Array,
          tf.sub(tf.scalar(1), x).dataSync() as Float32Array,
          tf.sub(x, column).dataSync() as Float32Array,
        ];
      });
    const onAddon = compute();
    await tf.setBackend('cpu');
    try {
      const onCpu = compute();
      onAddon.forEach((values, i) => expect(sameBits(values, onCpu[i]!)).toBe(true));
    } finally {
      await tf.setBackend('wasm');
    }
  });

  it("Add's same-shape and row sums stay on native_add.ts's kernel", () => {
    if (!present) return;
    const { native, calls } = countedAdd(nativeKernels({ threads: 2 }), 'add delegation');
    const inner = counted(native, 'add delegation, binary');
    registerWasmTrainingKernels({ native: inner.native });
    const [a, b] = operands([1024, 256], [256], 9);
    const got = run('add', a, [1024, 256], a, [1024, 256]);
    expect(sameBits(got.values, reference('add', a, [1024, 256], a, [1024, 256]))).toBe(true);
    const rows = run('add', b, [256], a, [1024, 256]);
    expect(sameBits(rows.values, reference('add', b, [256], a, [1024, 256]))).toBe(true);
    expect(calls()).toBe(2);
    expect(inner.calls()).toBe(0);
  });

  it('one thread, other broadcasts, int32 and small tensors keep the shipped kernels (and their results)', () => {
    if (!present) return;
    const one = counted(nativeKernels({ threads: 1 }), 'binary one thread');
    registerWasmTrainingKernels({ native: one.native });
    const [a, b] = operands([48, 65, 65], [], 21);
    expect(sameBits(run('mul', a, [48, 65, 65], b, []).values, reference('mul', a, [48, 65, 65], b, []))).toBe(true);
    expect(one.calls()).toBe(0);

    const { native, calls } = counted(nativeKernels({ threads: 2 }), 'binary fallbacks');
    registerWasmTrainingKernels({ native });
    const [column, row] = operands([1024, 1], [1, 256], 22); // an outer product: both broadcast
    const outer = run('mul', column, [1024, 1], row, [1, 256]);
    expect(sameBits(outer.values, reference('mul', column, [1024, 1], row, [1, 256]))).toBe(true);
    const [c, d] = operands([4, 64, 257], [64, 1], 23);
    expect(
      sameBits(run('sub', c, [4, 64, 257], d, [64, 1]).values, reference('sub', c, [4, 64, 257], d, [64, 1])),
    ).toBe(true);
    const n = SIZE_THRESHOLD * 2;
    const ints = tf.tidy(() => Array.from(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(3, 'int32')).dataSync()));
    expect(ints[n - 1]).toBe(3 * (n - 1));
    const diffs = tf.tidy(() => Array.from(tf.sub(tf.range(0, n, 1, 'int32'), tf.range(0, n, 1, 'int32')).dataSync()));
    expect(diffs.every((v) => v === 0)).toBe(true);
    const [small, s] = operands([SIZE_THRESHOLD - 1], [], 24);
    expect(
      sameBits(
        run('sub', s, [], small, [SIZE_THRESHOLD - 1]).values,
        reference('sub', s, [], small, [SIZE_THRESHOLD - 1]),
      ),
    ).toBe(true);
    expect(calls()).toBe(0);
  });

  it('the addon refuses lengths that do not match the dims', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as {
      broadcastBinary(...args: unknown[]): void;
      sumLeading(...args: unknown[]): void;
    };
    const f = (n: number): Float32Array => new Float32Array(n);
    const dims = (...d: number[]) => Int32Array.from(d);
    expect(() => raw.broadcastBinary(2, dims(2, 3, 4, 5), f(60), f(14), f(60))).toThrow(
      'onednn: broadcastBinary b has 14 values, expected 15',
    );
    expect(() => raw.broadcastBinary(2, dims(2, 3, 4, 5), f(60), f(15), f(59))).toThrow(
      'onednn: broadcastBinary y has 59 values, expected 60',
    );
    expect(() => raw.broadcastBinary(2, dims(4, 3, 4, 5), f(60), f(15), f(60))).toThrow(
      'onednn: broadcastBinary op must be 0-3 and outer, middle, inner positive',
    );
    expect(() => raw.broadcastBinary(0, dims(0, 3, 4, 5), f(60), f(15), f(60))).toThrow(
      'onednn: broadcastBinary takes (threads >= 1, Int32Array [op, outer, middle, inner], a, b, y)',
    );
    expect(() => raw.sumLeading(2, dims(4, 5), f(20), f(4))).toThrow('onednn: sumLeading y has 4 values, expected 5');
  });
});

/** The float64 sums of x [rows, n] over the rows (`leading`) or along each row, and of |x|. */
function f64Sums(x: Float32Array, rows: number, n: number, leading: boolean): { sum: Float64Array; abs: Float64Array } {
  const sum = new Float64Array(leading ? n : rows);
  const abs = new Float64Array(sum.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) {
      const v = x[r * n + c]!;
      const k = leading ? c : r;
      sum[k]! += v;
      abs[k]! += Math.abs(v);
    }
  }
  return { sum, abs };
}

// Models of the addon's sums (native/binary.cc), in the kernels' order: a Float32Array element is
// a float32 accumulator (each addition rounded to float32), a number a double.

/** sumLeading: rows in chunks of max(32, 8192 / n), each chunk's rows in order into float32
 * partials, the partials in chunk order in double. */
function leadingModel(x: Float32Array, rows: number, n: number, at = 0): Float32Array {
  const perChunk = Math.max(32, Math.floor(8192 / n));
  const partials: Float32Array[] = [];
  for (let r0 = 0; r0 < rows; r0 += perChunk) {
    const acc = new Float32Array(n);
    for (let r = r0; r < Math.min(rows, r0 + perChunk); r++) {
      for (let c = 0; c < n; c++) acc[c]! += x[at + r * n + c]!;
    }
    partials.push(acc);
  }
  return Float32Array.from({ length: n }, (_, c) => partials.reduce((s, p) => s + p[c]!, 0));
}

/** n values from `at` into 16 float32 lanes (value i into lane i % 16), the lanes in order in double. */
function lanesModel(x: Float32Array, at: number, n: number): number {
  const lane = new Float32Array(16);
  for (let i = 0; i < n; i++) lane[i % 16]! += x[at + i]!;
  return lane.reduce((s, v) => s + v, 0);
}

/** sumLast: each row by lanesModel. */
const lastModel = (x: Float32Array, rows: number, n: number): Float32Array =>
  Float32Array.from({ length: rows }, (_, r) => lanesModel(x, r * n, n));

/** sumMiddle: each outer slice as leadingModel. */
function middleModel(x: Float32Array, outer: number, m: number, inner: number): Float32Array {
  const y = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) y.set(leadingModel(x, m, inner, o * m * inner), o * inner);
  return y;
}

/** sumAll: blocks of 4096 values by lanesModel, the blocks' sums in order in double. */
function allModel(x: Float32Array): Float32Array {
  let s = 0;
  for (let at = 0; at < x.length; at += 4096) s += lanesModel(x, at, Math.min(4096, x.length - at));
  return Float32Array.of(s);
}

/** x [shape] summed over `axes` by the models, step by step as native_binary.ts runs them. */
function stepsModel(x: Float32Array, shape: readonly number[], axes: readonly number[]): Float32Array {
  let from = x;
  for (const { outer, m, inner } of sumSteps(shape, axes)) {
    if (outer === 1 && inner === 1) from = allModel(from);
    else if (outer === 1) from = leadingModel(from, m, inner);
    else if (inner === 1) from = lastModel(from, outer, m);
    else from = middleModel(from, outer, m, inner);
  }
  return from;
}

/** The float64 sums of x [shape] over `axes` (each output in row-major order), and of |x|. */
function f64Reduce(
  x: Float32Array,
  shape: readonly number[],
  axes: readonly number[],
): { sum: Float64Array; abs: Float64Array } {
  const kept = shape.map((_, k) => !axes.includes(k));
  const sum = new Float64Array(size(shape.filter((_, k) => kept[k])));
  const abs = new Float64Array(sum.length);
  const index = new Array<number>(shape.length).fill(0);
  for (let j = 0; j < x.length; j++) {
    let o = 0;
    for (let k = 0; k < shape.length; k++) if (kept[k]) o = o * shape[k]! + index[k]!;
    sum[o]! += x[j]!;
    abs[o]! += Math.abs(x[j]!);
    for (let k = shape.length - 1; k >= 0; k--) {
      index[k]!++;
      if (index[k]! < shape[k]!) break;
      index[k] = 0;
    }
  }
  return { sum, abs };
}

// [x shape, axes, keepDims, rows, n, leading]: the bias gradients and the attention's row sums.
const SUMS: ReadonlyArray<readonly [number[], number[], boolean, number, number, boolean]> = [
  [[1040, 192], [0], false, 1040, 192, true],
  [[1024, 1024], [0], false, 1024, 1024, true],
  [[16, 65, 192], [0, 1], false, 1040, 192, true],
  [[1040, 576], [0], true, 1040, 576, true],
  [[48, 65, 65], [2], false, 3120, 65, false],
  [[48, 65, 65], [-1], true, 3120, 65, false],
  [[1024, 129], [1], false, 1024, 129, false],
];

/**
 * tf.sum and tf.mean of x [shape] over `axes` on the addon at `threads`: their shape checked
 * against TF.js's, and the mean's bits against the sum divided by `count` (as native_sum.ts
 * divides ONNX Runtime's); returns the sum and how many times the addon's sums were called.
 */
function sumOnAddon(
  x: Float32Array,
  shape: number[],
  axes: number[] | undefined,
  keepDims: boolean,
  threads: number,
  count: number,
  label: string,
): { y: Float32Array; calls: number } {
  const { native, calls } = counted(nativeKernels({ threads }), label);
  registerWasmTrainingKernels({ native });
  const got = tf.tidy(() => {
    const y = tf.sum(tf.tensor(x, shape), axes, keepDims);
    const mean = tf.mean(tf.tensor(x, shape), axes, keepDims);
    return { shape: y.shape, y: y.dataSync() as Float32Array, mean: mean.dataSync() as Float32Array };
  });
  const made = calls(); // before the shape check below, which sums too
  expect(got.shape).toEqual(tf.tidy(() => tf.sum(tf.zeros(shape), axes, keepDims).shape));
  expect(
    sameBits(
      got.mean,
      got.y.map((v) => v / count),
    ),
  ).toBe(true);
  return { y: got.y, calls: made };
}

/** The largest |y[k] - sum[k]| / bound(k): at most 1 when every value is within its bound. */
function worstOverBound(y: Float32Array, sum: ArrayLike<number>, bound: (k: number) => number): number {
  let worst = 0;
  for (let k = 0; k < y.length; k++) worst = Math.max(worst, Math.abs(y[k]! - sum[k]!) / bound(k));
  return worst;
}

describe('Sum and Mean over leading or last axes on the addon', () => {
  for (const [shape, axes, keepDims, rows, n, leading] of SUMS) {
    it(`[${shape.join(', ')}] over [${axes.join(', ')}]${keepDims ? ' (keepDims)' : ''}: float64's sums within the bound, the same bits at 1, 2 and 3 threads`, () => {
      if (!present) return;
      const x = randomArray(size(shape), rows + n);
      x[7] = 1e4; // one large value among small ones
      const results: Float32Array[] = [];
      for (const threads of [1, 2, 3]) {
        const label = `sum ${threads} ${shape.join('x')} ${axes.join(',')}`;
        const got = sumOnAddon(x, shape, axes, keepDims, threads, leading ? rows : n, label);
        expect(got.calls).toBe(2);
        results.push(got.y);
      }
      expect(sameBits(results[0]!, results[1]!)).toBe(true);
      expect(sameBits(results[0]!, results[2]!)).toBe(true);
      // The kernels' order as it has always been: the bits of the README's demo table.
      expect(sameBits(results[0]!, leading ? leadingModel(x, rows, n) : lastModel(x, rows, n))).toBe(true);
      const { sum, abs } = f64Sums(x, rows, n, leading);
      // Float32 accumulation over at most `rows` values: error below rows * 2^-24 * sum|x| (far
      // below that in practice), plus the final rounding.
      const bound = (k: number) => 2 ** -24 * (Math.min(rows, 1 << 13) * abs[k]! + Math.abs(sum[k]!));
      expect(worstOverBound(results[0]!, sum, bound)).toBeLessThanOrEqual(1);
    });
  }

  it('keep their calls where sumSteps would read the shape otherwise ([1, n] over axis 1, [n, 1] over axis 0)', () => {
    if (!present) return;
    const n = SIZE_THRESHOLD + 3;
    const x = randomArray(n, 31);
    const direct = loadOneDnnBatchNorm({ threads: 2, required: true })!;
    for (const [method, shape, axis] of [
      ['sumLast', [1, n], 1],
      ['sumLeading', [n, 1], 0],
    ] as const) {
      const { native, calls } = countedNative(nativeKernels({ threads: 2 }), `kept ${method}`, 'batchNorm', [method]);
      registerWasmTrainingKernels({ native });
      const got = tf.tidy(() => tf.sum(tf.tensor(x, [...shape]), axis).dataSync() as Float32Array);
      expect(calls()).toBe(1);
      const want = new Float32Array(1);
      if (method === 'sumLast') direct.sumLast(1, n, x, want);
      else direct.sumLeading(n, 1, x, want);
      expect(sameBits(got, want)).toBe(true);
    }
  });

  it('small tensors and int32 keep ONNX Runtime or the shipped kernel', () => {
    if (!present) return;
    const x = randomArray(100 * 64, 5);
    const { native, calls } = counted(nativeKernels({ threads: 2 }), 'sum fallback');
    registerWasmTrainingKernels({ native });
    const small = tf.tidy(() => tf.sum(tf.tensor(x, [100, 64]), 0).dataSync() as Float32Array); // below SIZE_THRESHOLD
    expect(small[0]).toBeCloseTo(
      Array.from({ length: 100 }, (_, r) => x[r * 64]!).reduce((p, v) => p + v, 0),
      4,
    );
    const ints = tf.tidy(() => tf.sum(tf.ones([1024, 128], 'int32'), 0).dataSync());
    expect(Array.from(ints).every((v) => v === 1024)).toBe(true);
    expect(calls()).toBe(0);
  });
});

describe('sumSteps', () => {
  it('cuts any axis set into [outer, m, inner] steps, the innermost reduced group first', () => {
    const steps = (shape: number[], axes: number[]) => sumSteps(shape, axes).map((t) => [t.outer, t.m, t.inner]);
    expect(steps([8, 128, 256], [0, 1, 2])).toEqual([[1, 262144, 1]]);
    expect(steps([70001], [0])).toEqual([[1, 70001, 1]]);
    expect(steps([8, 128, 256], [0, 2])).toEqual([
      [1024, 256, 1],
      [1, 8, 128],
    ]);
    expect(steps([16, 65, 192], [1])).toEqual([[16, 65, 192]]);
    expect(steps([4, 32, 16, 40], [1, 3])).toEqual([
      [2048, 40, 1],
      [4, 32, 16],
    ]);
    expect(steps([6, 16, 40, 20], [0, 2])).toEqual([
      [96, 40, 20],
      [1, 6, 320],
    ]);
    // Size-1 axes dropped, neighbours merged: [2, 1, 3] over [0, 1, 2] is one group.
    expect(steps([2, 1, 3, 5, 7], [0, 1, 2, 4])).toEqual([
      [30, 7, 1],
      [1, 6, 5],
    ]);
    expect(steps([256, 1, 300], [1])).toEqual([]); // only a size-1 axis: a copy
  });
});

// [x shape, axes, keepDims]: every axis (rank 3, rank 1 with a tail past whole blocks and lanes),
// two reduced groups (rank 3 and 4), a middle axis (wide and 3-value rows), only a size-1 axis.
const ANY_AXES: ReadonlyArray<readonly [number[], number[] | undefined, boolean]> = [
  [[8, 128, 256], undefined, false],
  [[8, 128, 256], [0, 1, 2], true],
  [[70001], [0], false],
  [[8, 128, 256], [0, 2], false],
  [[8, 128, 256], [-1, 0], true],
  [[16, 65, 192], [1], false],
  [[16, 65, 192], [1], true],
  [[64, 1000, 3], [1], false],
  [[4, 32, 16, 40], [1, 3], false],
  [[4, 32, 16, 40], [1, 3], true],
  [[6, 16, 40, 20], [0, 2], true],
  [[256, 1, 300], [1], false],
];

describe('Sum and Mean over any other axes on the addon', () => {
  for (const [shape, axisArg, keepDims] of ANY_AXES) {
    const axes = tf.util.parseAxisParam(axisArg ?? shape.map((_, k) => k), shape).sort((p, q) => p - q);
    it(`[${shape.join(', ')}] over ${axisArg === undefined ? 'every axis' : `[${axisArg.join(', ')}]`}${keepDims ? ' (keepDims)' : ''}: float64's sums within the bound, the kernels' order to the bit, the same bits at 1 and 2 threads`, () => {
      if (!present) return;
      const x = randomArray(size(shape), size(shape) + axes.length);
      x[7] = 1e4; // one large value among small ones
      const count = size(axes.map((a) => shape[a]!));
      const results: Float32Array[] = [];
      for (const threads of [1, 2]) {
        const label = `any axes ${threads} ${shape.join('x')} ${axes}`;
        const got = sumOnAddon(x, shape, axisArg, keepDims, threads, count, label);
        expect(got.calls).toBe(2 * sumSteps(shape, axes).length);
        results.push(got.y);
      }
      expect(sameBits(results[0]!, results[1]!)).toBe(true);
      expect(sameBits(results[0]!, stepsModel(x, shape, axes))).toBe(true);
      const { sum, abs } = f64Reduce(x, shape, axes);
      // As the row sums' bound, per step: float32 accumulation over at most 8K values.
      const bound = (k: number) => 2 ** -24 * (2 * Math.min(count, 1 << 13) * abs[k]! + Math.abs(sum[k]!));
      expect(worstOverBound(results[0]!, sum, bound)).toBeLessThanOrEqual(1);
    });
  }

  it('sumMiddle and sumAll called directly: the same bits at 1 and 2 threads, the models to the bit', () => {
    if (!present) return;
    const [one, two] = [1, 2].map((threads) => loadOneDnnBatchNorm({ threads, required: true })!);
    const x = randomArray(300_001, 41);
    const all = [one!.sumAll(x), two!.sumAll(x)];
    expect(all[0]).toBe(all[1]);
    expect(Float32Array.of(all[0]!)).toEqual(allModel(x));
    for (const [outer, m, inner] of [
      [10, 300, 100],
      [3, 100_000, 1 + 0],
      [1000, 100, 3],
    ] as const) {
      if (inner === 1) continue; // sumMiddle's steps have inner > 1
      const xs = x.subarray(0, outer * m * inner);
      const ys = [one!, two!].map((nb) => {
        const y = new Float32Array(outer * inner);
        nb.sumMiddle(outer, m, inner, xs, y);
        return y;
      });
      expect(sameBits(ys[0]!, ys[1]!)).toBe(true);
      expect(sameBits(ys[0]!, middleModel(xs, outer, m, inner))).toBe(true);
      // Each slice is sumLeading's sum of [m, inner] to the bit.
      const slice = new Float32Array(inner);
      two!.sumLeading(m, inner, xs.subarray(m * inner, 2 * m * inner), slice);
      expect(sameBits(ys[1]!.subarray(inner, 2 * inner), slice)).toBe(true);
    }
  });

  it('the same bits wherever the values sit (copies at 17 float offsets in one array)', () => {
    if (!present) return;
    const nb = loadOneDnnBatchNorm({ threads: 2, required: true })!;
    const [outer, m, inner] = [8, 128, 256];
    const x = randomArray(outer * m * inner, 78);
    const buffer = new Float32Array(x.length + 16);
    const bits = { all: new Set<number>(), middle: new Set<string>(), leading: new Set<string>() };
    const hex = (y: Float32Array) => Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('hex');
    for (let at = 0; at <= 16; at++) {
      buffer.fill(0);
      const xs = buffer.subarray(at, at + x.length);
      xs.set(x);
      bits.all.add(nb.sumAll(xs));
      const middle = new Float32Array(outer * inner);
      nb.sumMiddle(outer, m, inner, xs, middle);
      bits.middle.add(hex(middle));
      const leading = new Float32Array(m * inner);
      nb.sumLeading(outer, m * inner, xs, leading);
      bits.leading.add(hex(leading));
    }
    expect([bits.all.size, bits.middle.size, bits.leading.size]).toEqual([1, 1, 1]);
  });

  it('infinities and NaN come out as ONNX Runtime sums them', () => {
    if (!present) return;
    const shape = [8, 128, 256];
    const x = randomArray(size(shape), 12);
    x[5 * 256 + 1] = Number.POSITIVE_INFINITY; // output [5] of [0, 2]: +Inf
    x[128 * 256 + 3 * 256 + 1] = Number.NEGATIVE_INFINITY; // output [3]: -Inf
    x[2 * 128 * 256 + 9 * 256] = Number.POSITIVE_INFINITY; // output [9]: +Inf and -Inf, NaN
    x[3 * 128 * 256 + 9 * 256 + 2] = Number.NEGATIVE_INFINITY;
    x[20 * 256 + 4] = Number.NaN; // output [20]: NaN
    const sums = (native: NativeKernels) => {
      registerWasmTrainingKernels({ native });
      return tf.tidy(() =>
        [undefined, [0, 2], [1], [0]].map((axes) => tf.sum(tf.tensor(x, shape), axes).dataSync() as Float32Array),
      );
    };
    const onnx = sums(nativeKernels({ threads: 2, batchNorm: 'wasm' }));
    const addon = counted(nativeKernels({ threads: 2 }), 'non-finite');
    const got = sums(addon.native);
    expect(addon.calls()).toBe(1 + 2 + 1 + 1);
    expect(got[0]![0]).toBeNaN();
    expect([got[1]![3], got[1]![5], got[1]![9], got[1]![20]]).toEqual([-Infinity, Infinity, NaN, NaN]);
    got.forEach((y, i) => {
      const o = onnx[i]!;
      expect(y.length).toBe(o.length);
      for (let k = 0; k < y.length; k++) {
        if (!Number.isFinite(o[k]!) || !Number.isFinite(y[k]!)) expect(y[k]).toBe(o[k]);
      }
    });
  });

  it('the addon refuses sumMiddle and sumAll lengths that do not match the dims', () => {
    if (!present) return;
    const raw = loadAddon() as unknown as {
      sumMiddle(...args: unknown[]): void;
      sumAll(...args: unknown[]): void;
    };
    const f = (n: number): Float32Array => new Float32Array(n);
    const dims = (...d: number[]) => Int32Array.from(d);
    expect(() => raw.sumMiddle(2, dims(2, 3, 4), f(24), f(12))).toThrow(
      'onednn: sumMiddle y has 12 values, expected 8',
    );
    expect(() => raw.sumMiddle(2, dims(2, 0, 4), f(0), f(8))).toThrow(
      'onednn: sumMiddle outer, m and inner must be positive',
    );
    expect(() => raw.sumMiddle(2, dims(2, 3), f(6), f(2))).toThrow(
      'onednn: sumMiddle takes (threads >= 1, Int32Array [outer, m, inner], x, y)',
    );
    expect(() => raw.sumAll(2, dims(10), f(9), f(1))).toThrow('onednn: sumAll x has 9 values, expected 10');
    expect(() => raw.sumAll(2, dims(10), f(10), f(2))).toThrow('onednn: sumAll y has 2 values, expected 1');
  });
});

// The few-class Matryoshka softmax cross-entropy on the addon (src/native/onednn_prefix_few.ts and
// native/prefix_ce_few.cc) against the ONNX Runtime calls it replaces (src/wasm/native_prefix_softmax.ts
// with `fewClassHead: 'onnxruntime'`): losses, probabilities and all three gradients to 1e-5, with
// and without a bias, both table layouts, 1, 2, 3 and 8 blocks of 16 classes, nesting blocks 1 to 33 wide
// (the scalar and 8-wide tails), dims short of d, row counts that are no multiple of the row tiles,
// negative and zero upstream gradients; the losses against a float64 computation here; the same
// bits at 1 and 2 threads; more than 128 classes left to ONNX Runtime; the addon's own checks; and
// the fallback where the addon is absent (a fresh module instance under MRL_ONEDNN=off).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadAddon } from '../src/native/onednn.js';
import { loadOneDnnPrefixCeFew, PREFIX_CE_FEW_MAX_CLASSES } from '../src/native/onednn_prefix_few.js';
import { loadOnnxRuntimeKernels, type NativeKernels } from '../src/native/onnxruntime.js';
import { PREFIX_SOFTMAX_CE, PREFIX_SOFTMAX_CE_GRAD } from '../src/wasm/native_prefix_softmax.js';
import { sameBits } from './helpers/bits.js';
import { expectClose, randomArray, withScope } from './helpers/close.js';
import {
  countedNative,
  expectNeedsOneDnn,
  loaded,
  nativeKernels,
  ONEDNN_BUILDABLE,
  withOneDnnOff,
} from './helpers/onednn.js';

const ort = nativeKernels({ fewClassHead: 'onnxruntime' });
/** The default kernels: the head on the addon where it loads, else the same as `ort`. */
const auto = nativeKernels();
const two = nativeKernels({ threads: 2 });
const present = loadOneDnnPrefixCeFew({ threads: 1 }) !== undefined;

interface Case {
  name: string;
  rows: number;
  width: number;
  classes: number;
  dims: number[];
  classesFirst: boolean;
  bias: boolean;
  /** The upstream gradient of each prefix's loss. */
  dy: number[];
}

const CASES: Case[] = [
  {
    name: "the MLP's head: 10 classes, blocks 8 to 32 wide, a tail of rows",
    rows: 37,
    width: 64,
    classes: 10,
    dims: [8, 16, 32, 64],
    classesFirst: false,
    bias: true,
    dy: [1, 1, 1, 1],
  },
  {
    name: 'a tied table of 17 classes (two blocks), odd block widths, no bias, negative and zero dy',
    rows: 13,
    width: 40,
    classes: 17,
    dims: [3, 12, 27, 40],
    classesFirst: true,
    bias: false,
    dy: [0.5, -1, 0, 2],
  },
  {
    name: '40 classes (three blocks), dims short of d',
    rows: 9,
    width: 30,
    classes: 40,
    dims: [1, 5, 21],
    classesFirst: true,
    bias: true,
    dy: [1.5, 1, 0.25],
  },
  {
    name: '128 classes (eight blocks), one dim equal to d',
    rows: 11,
    width: 48,
    classes: PREFIX_CE_FEW_MAX_CLASSES,
    dims: [48],
    classesFirst: false,
    bias: true,
    dy: [1],
  },
];

interface Result {
  losses: Float32Array;
  probs: Float32Array;
  dz: Float32Array;
  dw: Float32Array;
  db: Float32Array | null;
}

function inputs(c: Case) {
  const z = randomArray(c.rows * c.width, 1);
  const w = randomArray(c.classes * c.width, 2);
  const b = randomArray(c.classes, 3);
  const labels = Int32Array.from({ length: c.rows }, (_, i) => (i * 7 + 3) % c.classes);
  return { z, w, b, labels };
}

/** Both kernels of `c`, registered on `native`. */
function run(native: NativeKernels, c: Case): Result {
  registerWasmTrainingKernels({ native });
  const { z, w, b, labels } = inputs(c);
  return withScope(() => {
    const attrs = { dims: c.dims, classesFirst: c.classesFirst, hasBias: c.bias } as unknown as tf.NamedAttrMap;
    const embedding = tf.tensor2d(z, [c.rows, c.width]);
    const weight = tf.tensor2d(w, c.classesFirst ? [c.classes, c.width] : [c.width, c.classes]);
    const bias = c.bias ? { bias: tf.tensor1d(b) } : {};
    const labelIds = tf.tensor1d(labels, 'int32');
    const [losses, probs] = tf
      .engine()
      .runKernel(PREFIX_SOFTMAX_CE, { embedding, weight, labels: labelIds, ...bias }, attrs) as tf.Tensor[];
    const grads = tf
      .engine()
      .runKernel(
        PREFIX_SOFTMAX_CE_GRAD,
        { dy: tf.tensor1d(c.dy), probs: probs!, labels: labelIds, embedding, weight },
        attrs,
      ) as tf.Tensor[];
    return {
      losses: losses!.dataSync() as Float32Array,
      probs: probs!.dataSync() as Float32Array,
      dz: grads[0]!.dataSync() as Float32Array,
      dw: grads[1]!.dataSync() as Float32Array,
      db: c.bias ? (grads[2]!.dataSync() as Float32Array) : null,
    };
  });
}

/** Each prefix's mean cross-entropy, in float64. */
function referenceLosses(c: Case): number[] {
  const { z, w, b, labels } = inputs(c);
  const weight = (a: number, y: number) => (c.classesFirst ? w[y * c.width + a]! : w[a * c.classes + y]!);
  return c.dims.map((m) => {
    let total = 0;
    for (let i = 0; i < c.rows; i++) {
      const logits = Array.from({ length: c.classes }, (_, y) => {
        let s = c.bias ? b[y]! : 0;
        for (let a = 0; a < m; a++) s += z[i * c.width + a]! * weight(a, y);
        return s;
      });
      const hi = Math.max(...logits);
      total += hi + Math.log(logits.reduce((s, l) => s + Math.exp(l - hi), 0)) - logits[labels[i]!]!;
    }
    return total / c.rows;
  });
}

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('the few-class head on the addon: used where it is built, ONNX Runtime where it is not', () => {
  it('loads wherever setup can build the addon, and never with fewClassHead onnxruntime', () => {
    if (ONEDNN_BUILDABLE) {
      expect(present, 'libdnnl-dev is installed: run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    }
    expect(auto.prefixCeFew !== undefined).toBe(present);
    if (present) expect(auto.detail).toMatch(/few-class Matryoshka heads on the oneDNN addon/);
    expect(ort.prefixCeFew).toBeUndefined();
    expect(ort.detail).not.toMatch(/few-class/);
  });

  it('refuses an unknown fewClassHead source, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ fewClassHead: 'mkl' as 'onednn' })).toThrow(
      'fewClassHead must be one of onednn, onnxruntime, got "mkl".',
    );
  });

  it('without the addon: the ONNX Runtime calls run, with the same bits as fewClassHead onnxruntime', async () => {
    const c = CASES[1]!;
    const want = run(ort, c);
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.prefixCeFew).toBeUndefined();
      const got = run(fallback, c);
      for (const key of ['losses', 'probs', 'dz', 'dw'] as const) expect(sameBits(got[key], want[key])).toBe(true);
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ fewClassHead: 'onednn' }),
        "fewClassHead 'onednn' needs the oneDNN addon with the few-class head (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates it or is turned off (MRL_ONEDNN=off).",
      );
    });
  });

  it('an addon built before the head: undefined, or the fix when it is required', async () => {
    try {
      vi.resetModules();
      vi.doMock('../src/native/onednn.js', () => ({ loadAddon: () => ({ version: () => '2.6.3' }) }));
      const fresh = await import('../src/native/onednn_prefix_few.js');
      expect(fresh.loadOneDnnPrefixCeFew({ threads: 1 })).toBeUndefined();
      expect(() => fresh.loadOneDnnPrefixCeFew({ threads: 1, required: true })).toThrow(/predates it/);
    } finally {
      vi.doUnmock('../src/native/onednn.js');
      vi.resetModules();
    }
  });
});

describe.runIf(present)('the few-class head on the addon against ONNX Runtime', () => {
  for (const c of CASES) {
    it(`${c.name}: losses, probabilities and gradients to 1e-5`, () => {
      const want = run(ort, c);
      const { native, calls } = countedNative(auto, 'counted', 'prefixCeFew', ['forward', 'backward']);
      const got = run(native, c);
      expect(calls()).toBe(2);
      expectClose(got.losses, want.losses, 1e-5);
      expectClose(got.probs, want.probs, 1e-5);
      expectClose(got.dz, want.dz, 1e-5);
      expectClose(got.dw, want.dw, 1e-5);
      if (c.bias) expectClose(got.db!, want.db!, 1e-5);
      else expect(got.db).toBeNull();
      expectClose(got.losses, referenceLosses(c), 1e-5);
      // Columns past the last dim get no gradient, in dz and in the table.
      const last = c.dims[c.dims.length - 1]!;
      const beyond = (values: Float32Array, column: (i: number) => number) =>
        Array.from(values).filter((_, i) => column(i) >= last);
      if (last < c.width) {
        expect(beyond(got.dz, (i) => i % c.width).every((v) => v === 0)).toBe(true);
        const dwBeyond = beyond(got.dw, c.classesFirst ? (i) => i % c.width : (i) => Math.floor(i / c.classes));
        expect(dwBeyond.length).toBeGreaterThan(0);
        expect(dwBeyond.every((v) => v === 0)).toBe(true);
      }
      // Every real gradient entry is written: none of the rest is left at zero by a skipped tile.
      const inside = Array.from(got.dz).filter((_, i) => i % c.width < last);
      expect(inside.filter((v) => v === 0).length).toBe(0);
    });
  }

  it('the same bits at 1 and 2 threads, and run to run, on a problem large enough to split', () => {
    const c: Case = {
      name: 'large',
      rows: 600,
      width: 512,
      classes: 10,
      dims: [8, 16, 32, 64, 128, 256, 512],
      classesFirst: false,
      bias: true,
      dy: [1, 1, 1, 1, 1, 1, 1],
    };
    const one = run(auto, c);
    const again = run(auto, c);
    const parallel = run(two, c);
    for (const key of ['losses', 'probs', 'dz', 'dw', 'db'] as const) {
      expect(sameBits(again[key]!, one[key]!), key).toBe(true);
      expect(sameBits(parallel[key]!, one[key]!), key).toBe(true);
    }
    expectClose(one.losses, referenceLosses(c), 1e-5);
  });

  it('leaves a head of more than 128 classes to ONNX Runtime', () => {
    const c = { ...CASES[0]!, classes: PREFIX_CE_FEW_MAX_CLASSES + 1 };
    const { native, calls } = countedNative(auto, 'counted', 'prefixCeFew', ['forward', 'backward']);
    const got = run(native, c);
    expect(calls()).toBe(0);
    expectClose(got.losses, referenceLosses(c), 1e-5);
  });

  it('the addon checks its labels, dims and sizes itself, naming what is wrong', () => {
    const lib = loadAddon() as unknown as Record<string, (...args: unknown[]) => void>;
    const dims = (classes: number, ...nest: number[]) => Int32Array.from([1, 2, 4, classes, 0, nest.length, ...nest]);
    const f = (n: number) => new Float32Array(n);
    const forward = (d: Int32Array, labels: Int32Array, probs = f(2 * 2 * 3)) =>
      lib['prefixCeFewForward']!(d, f(8), f(12), f(0), labels, probs, f(2));
    expect(() => forward(dims(3, 2, 4), Int32Array.of(0, 3))).toThrow(/label 3 of row 1 is outside \[0, 3\)/);
    expect(() => forward(dims(3, 4, 2), Int32Array.of(0, 1))).toThrow(/nesting dims must ascend within 1..width/);
    expect(() => forward(dims(129, 2, 4), Int32Array.of(0, 1))).toThrow(/1 <= classes <= 128/);
    expect(() => forward(dims(3, 2, 4), Int32Array.of(0, 1), f(5))).toThrow(/probs has 5 values, expected 12/);
  });

  it('no rows: NaN losses, zero table and bias gradients', () => {
    const head = auto.prefixCeFew!;
    const shape = { rows: 0, width: 4, classes: 3, classesFirst: false, dims: [2, 4] };
    const losses = new Float32Array(2);
    head.forward(shape, new Float32Array(0), randomArray(12, 1), null, new Int32Array(0), new Float32Array(0), losses);
    expect(Array.from(losses).every(Number.isNaN)).toBe(true);
    const dw = new Float32Array(12).fill(7);
    const db = new Float32Array(3).fill(7);
    const dy = Float32Array.of(1, 1);
    head.backward(
      shape,
      dy,
      new Float32Array(0),
      new Int32Array(0),
      new Float32Array(0),
      randomArray(12, 1),
      new Float32Array(0),
      dw,
      db,
    );
    expect(Array.from(dw).every((v) => v === 0)).toBe(true);
    expect(Array.from(db).every((v) => v === 0)).toBe(true);
  });
});

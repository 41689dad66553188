// The AdamW update on the oneDNN addon's threads (native/adamw_update.cc through
// src/wasm/optimizer_updates.ts): several steps in a row (so that m and v carry over), with weight
// decay, at 1, 2 and 3 threads, below and above ADAMW_NATIVE_VALUES: the same bits as the wasm SIMD
// kernel and as float32 arithmetic done here (Math.fround after each operation, in the kernel's
// order), the addon counted as called at 2 and 3 threads above the threshold and not otherwise,
// and the wasm kernel for an addon that predates the update, for `sgd: 'wasm'` and without the addon.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadOneDnnUpdates, type NativeUpdates, oneDnnUpdatesAvailable } from '../src/native/onednn_updates.js';
import type { NativeKernels } from '../src/native/onnxruntime.js';
import {
  ADAMW_NATIVE_VALUES,
  ADAMW_UPDATE,
  type AdamWUpdateAttrs,
  adamWCoefficients,
} from '../src/wasm/optimizer_updates.js';
import { randomArray } from './helpers/close.js';
import { countedNative, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

/** `native` with its addon kernels under test counted (see countedNative). */
const countedAdamW = (native: NativeKernels, label: string) => countedNative(native, label, 'updates', ['adamW']);

const present = oneDnnUpdatesAvailable() && loadOneDnnUpdates({ threads: 2 })?.adamW !== undefined;

const BETA1 = 0.9;
const BETA2 = 0.999;
const STEPS = 3;
/** Step t's attributes (t from 1), as core's AdamW gives them: bias corrections 1 - beta^t. */
const attrsAt = (t: number, weightDecay: number): AdamWUpdateAttrs => ({
  lr: 1e-3,
  beta1: BETA1,
  beta2: BETA2,
  epsilon: 1e-8,
  weightDecay,
  correction1: 1 - BETA1 ** t,
  correction2: 1 - BETA2 ** t,
});

/**
 * Step t's gradient; every 4099th value tiny, so that g g and v are float32 subnormals (in blocks
 * on every thread), which a flush-to-zero mode would change.
 */
function gradient(n: number, t: number): Float32Array {
  const g = randomArray(n, 100 + t);
  for (let i = 1; i < n; i += 4099) g[i] = t % 2 === 0 ? 1e-20 : -3e-21;
  return g;
}

interface State {
  param: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** STEPS updates through the registered TF.js kernel, from zero moments; the state after each. */
function train(n: number, weightDecay: number): State[] {
  let [param, m, v] = [tf.tensor1d(randomArray(n, 7)), tf.zeros([n]), tf.zeros([n])] as tf.Tensor[];
  const states: State[] = [];
  for (let t = 1; t <= STEPS; t++) {
    const grad = tf.tensor1d(gradient(n, t));
    const outs = tf
      .engine()
      .runKernel(ADAMW_UPDATE, { param: param!, grad, m: m!, v: v! }, { ...attrsAt(t, weightDecay) }) as tf.Tensor[];
    tf.dispose([param!, m!, v!, grad]);
    [param, m, v] = outs;
    const [p, mm, vv] = outs.map((o) => o.dataSync() as Float32Array) as [Float32Array, Float32Array, Float32Array];
    states.push({ param: p, m: mm, v: vv });
  }
  tf.dispose([param!, m!, v!]);
  return states;
}

/** The same steps in float32 arithmetic here: one rounding after each operation, the kernel's order. */
function reference(n: number, weightDecay: number): State[] {
  const f = Math.fround;
  const param = Float32Array.from(randomArray(n, 7));
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const states: State[] = [];
  for (let t = 1; t <= STEPS; t++) {
    const g = gradient(n, t);
    const c = adamWCoefficients(attrsAt(t, weightDecay));
    const [b1, ob1, b2, ob2, keep, stepScale, vScale, eps] = [
      c.beta1,
      c.oneMinusBeta1,
      c.beta2,
      c.oneMinusBeta2,
      c.keep,
      c.stepScale,
      c.vScale,
      c.epsilon,
    ].map(f) as [number, number, number, number, number, number, number, number];
    for (let i = 0; i < n; i++) {
      const gi = g[i]!;
      const mi = f(f(m[i]! * b1) + f(gi * ob1));
      const vi = f(f(v[i]! * b2) + f(f(gi * gi) * ob2));
      m[i] = mi;
      v[i] = vi;
      // Float64 square root and division rounded once to float32 are the float32 operations' results.
      param[i] = f(f(param[i]! * keep) - f(f(mi * stepScale) / f(f(Math.sqrt(f(vi * vScale))) + eps)));
    }
    states.push({ param: param.slice(), m: m.slice(), v: v.slice() });
  }
  // The tiny gradients did make subnormals (guards the guard).
  expect(v.some((x) => x !== 0 && Math.abs(x) < 1.1754943508222875e-38)).toBe(true);
  return states;
}

function expectSameStates(got: State[], want: State[], what: string): void {
  expect(got.length).toBe(want.length);
  got.forEach((s, step) => {
    for (const key of ['param', 'm', 'v'] as const) {
      expect(sameBits(s[key], want[step]![key]), `${what}: ${key} after step ${step + 1}`).toBe(true);
    }
  });
}

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(() => registerWasmTrainingKernels({ native: nativeKernels() }));

describe('AdamW on the addon', () => {
  it('is loaded wherever setup can build the addon, and named in the kernels` detail', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    const auto = nativeKernels({ threads: 2 });
    expect(auto.updates?.adamW !== undefined).toBe(present);
    expect(auto.updates?.threads).toBe(present ? 2 : undefined);
    expect(auto.detail.includes('SGD and AdamW on the oneDNN addon')).toBe(present);
    expect(nativeKernels({ sgd: 'wasm' }).updates).toBeUndefined();
  });

  // Below the threshold; one block and a partial one, odd (a SIMD tail in the wasm kernel); four
  // blocks and a partial one.
  const SIZES = [ADAMW_NATIVE_VALUES - 5, ADAMW_NATIVE_VALUES + 3, 4 * 8192 + 7];
  for (const threads of [1, 2, 3]) {
    for (const n of SIZES) {
      const onAddon = threads >= 2 && n >= ADAMW_NATIVE_VALUES;
      const where = onAddon ? 'the addon' : 'the wasm kernel';
      it(`${n} values at ${threads} thread(s), ${STEPS} steps with weight decay: on ${where}, the wasm kernel's bits`, () => {
        if (!present) return;
        const { native, calls } = countedAdamW(nativeKernels({ threads }), `adamw test ${threads}, ${n}`);
        registerWasmTrainingKernels({ native });
        const got = train(n, 0.01);
        expect(calls()).toBe(onAddon ? STEPS : 0);
        registerWasmTrainingKernels({ native: nativeKernels({ threads, sgd: 'wasm' }) });
        const wasm = train(n, 0.01);
        expectSameStates(got, wasm, 'against the wasm kernel');
        expectSameStates(got, reference(n, 0.01), 'against float32 arithmetic');
      });
    }
  }

  it('without weight decay and at 3 threads, the same bits as at 2 (a fixed split into blocks)', () => {
    if (!present) return;
    const n = 5 * 8192 + 1;
    const runs = [2, 3].map((threads) => {
      registerWasmTrainingKernels({ native: nativeKernels({ threads }) });
      return train(n, 0);
    });
    expectSameStates(runs[1]!, runs[0]!, '3 threads against 2');
    expectSameStates(runs[0]!, reference(n, 0), 'against float32 arithmetic');
  });

  it('an addon that predates the update leaves AdamW on the wasm kernel', () => {
    if (!present) return;
    const withAddon = nativeKernels({ threads: 2 });
    const { adamW: _, ...older } = withAddon.updates!;
    const native: NativeKernels = {
      ...withAddon,
      detail: `${withAddon.detail} (no adamW)`,
      updates: older as NativeUpdates,
    };
    registerWasmTrainingKernels({ native });
    const n = 2 * ADAMW_NATIVE_VALUES;
    expectSameStates(train(n, 0.01), reference(n, 0.01), 'against float32 arithmetic');
  });

  it('refuses arrays of different lengths, naming the array', () => {
    if (!present) return;
    const updates = loadOneDnnUpdates({ threads: 2 })!;
    const [p, g, m, v, pOut, mOut] = [0, 1, 2, 3, 4, 5].map(() => new Float32Array(8));
    const c = adamWCoefficients(attrsAt(1, 0));
    expect(() => updates.adamW!(p!, g!, m!, v!, pOut!, mOut!, new Float32Array(7), c)).toThrow(
      'onednn: adamW vOut has 7 values, expected 8 like p',
    );
  });

  it('without the addon: no native update, and AdamW gives the float32 arithmetic`s bits on wasm', async () => {
    await withOneDnnOff((fresh) => {
      const native = loaded(fresh.loadOnnxRuntimeKernels({ threads: 2 }));
      expect(native.updates).toBeUndefined();
      expect(native.detail).not.toMatch(/AdamW/);
      registerWasmTrainingKernels({ native });
      const n = ADAMW_NATIVE_VALUES + 3;
      expectSameStates(train(n, 0.01), reference(n, 0.01), 'against float32 arithmetic');
    });
  });
});

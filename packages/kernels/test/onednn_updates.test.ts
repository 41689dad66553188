// The SGD-momentum update on the oneDNN addon's threads (src/native/onednn_updates.ts and
// native/sgd_update.cc): the same bits as the wasm SIMD kernel it replaces (through the TF.js
// kernel: plain, Nesterov, weight decay, sizes with a SIMD tail and above the threading
// threshold), a float64 reference, the same bits at 1 and 2 threads, and the fallback where the
// addon is absent (a fresh module instance under MRL_ONEDNN=off), which runs here always.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { loadOneDnnUpdates, oneDnnUpdatesAvailable } from '../src/native/onednn_updates.js';
import { loadOnnxRuntimeKernels, type NativeKernels } from '../src/native/onnxruntime.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '../src/wasm/optimizer_updates.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectNeedsOneDnn, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';
import { sameBits } from './helpers/bits.js';

const present = oneDnnUpdatesAvailable();

const SETTINGS: SgdUpdateAttrs[] = [
  { lr: 0.01, momentum: 0.9, weightDecay: 0, nesterov: false },
  { lr: 0.1, momentum: 0.5, weightDecay: 5e-4, nesterov: true },
];
// One value, a SIMD tail, one block plus a tail, and a ResNet 3x3x128x128 filter (threaded).
const SIZES = [1, 7, 8192 + 3, 3 * 3 * 128 * 128];

describe('the SGD update on the addon: used where it is built, the wasm kernel where it is not', () => {
  it('loads wherever setup can build the addon, and is then the default', () => {
    if (ONEDNN_BUILDABLE) expect(present, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    const auto = nativeKernels();
    expect(auto.updates !== undefined).toBe(present);
    expect(auto.detail.includes('SGD and AdamW on the oneDNN addon')).toBe(present);
    expect(nativeKernels({ sgd: 'wasm' }).updates).toBeUndefined();
    expect(() => loadOnnxRuntimeKernels({ sgd: 'blas' as 'wasm' })).toThrow(
      'sgd must be one of onednn, wasm, got "blas".',
    );
  });

  it('without the addon: no native update, and asking for it names the fix', async () => {
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.updates).toBeUndefined();
      expect(fallback.detail).not.toMatch(/SGD/);
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ sgd: 'onednn' }),
        "sgd 'onednn' needs the oneDNN addon with its update kernels (packages/kernels/native/build/onednn.node), which is not built, does not load here, predates them or is turned off (MRL_ONEDNN=off).",
      );
    });
  });
});

describe('the addon', () => {
  it('equals a float64 reference to 1e-6 and gives the same bits at 1 and 2 threads', () => {
    if (!present) {
      expect(ONEDNN_BUILDABLE).toBe(false);
      return;
    }
    const n = 3 * 3 * 128 * 128;
    const [p, g, buf] = [1, 2, 3].map((s) => randomArray(n, s)) as [Float32Array, Float32Array, Float32Array];
    for (const { lr, momentum, weightDecay, nesterov } of SETTINGS) {
      const run = (threads: number): [Float32Array, Float32Array] => {
        const pOut = new Float32Array(n).fill(Number.NaN);
        const bufOut = new Float32Array(n).fill(Number.NaN);
        loadOneDnnUpdates({ threads })!.sgdMomentum(p, g, buf, pOut, bufOut, lr, momentum, weightDecay, nesterov);
        return [pOut, bufOut];
      };
      const [pOut, bufOut] = run(2);
      const wantBuf = Float64Array.from(buf, (b, i) => momentum * b + g[i]! + weightDecay * p[i]!);
      const wantP = Float64Array.from(p, (v, i) => {
        const d = g[i]! + weightDecay * v;
        return v - lr * (nesterov ? d + momentum * wantBuf[i]! : wantBuf[i]!);
      });
      expectClose(bufOut, wantBuf, 1e-6);
      expectClose(pOut, wantP, 1e-6);
      for (const [again, bufAgain] of [run(2), run(1)]) {
        expect(sameBits(again, pOut)).toBe(true);
        expect(sameBits(bufAgain, bufOut)).toBe(true);
      }
    }
  });
});

describe('the TF.js kernel on the addon gives the wasm SIMD kernel`s bits', () => {
  const withAddon = nativeKernels({ threads: 2 });
  const wasmOnly = nativeKernels({ threads: 2, sgd: 'wasm' });
  beforeAll(async () => {
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    registerWasmTrainingKernels({ native: nativeKernels() });
    await tf.setBackend('cpu');
  });

  const update = (native: NativeKernels, n: number, attrs: SgdUpdateAttrs): Float32Array[] => {
    registerWasmTrainingKernels({ native });
    return tf.tidy(() => {
      const [param, grad, buf] = [4, 5, 6].map((s) => tf.tensor1d(randomArray(n, s + n)));
      const outs = tf
        .engine()
        .runKernel(SGD_UPDATE, { param: param!, grad: grad!, buf: buf! }, { ...attrs }) as tf.Tensor[];
      return outs.map((t) => t.dataSync() as Float32Array);
    });
  };

  for (const n of SIZES) {
    for (const attrs of SETTINGS) {
      it(`${n} values, nesterov ${attrs.nesterov}, weight decay ${attrs.weightDecay}`, () => {
        if (!present) {
          expect(ONEDNN_BUILDABLE).toBe(false);
          return;
        }
        const got = update(withAddon, n, attrs);
        const want = update(wasmOnly, n, attrs);
        expect(got.length).toBe(2);
        got.forEach((values, i) => expect(sameBits(values, want[i]!), i === 0 ? 'param' : 'buf').toBe(true));
      });
    }
  }
});

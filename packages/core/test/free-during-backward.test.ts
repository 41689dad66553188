import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '@mrl/kernels';
import { freeDuringBackward, SHAPE_ONLY_SAVED_KERNELS } from '@mrl/kernels';
import { chunkedPrefixSoftmaxCrossEntropy } from '../src/ops/chunked-mlm-head.js';
import { randomArray } from './helpers/close.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';

/**
 * A residual MLP (tensors used twice, so gradients accumulate), a custom-gradient loss, and a
 * second output that does not reach the loss: the cases where freeing early could go wrong.
 */
function setup() {
  const layers = Array.from({ length: 40 }, (_, i) => tf.variable(tf.tensor2d(randomArray(32 * 32, i + 1), [32, 32])));
  const head = tf.variable(tf.tensor2d(randomArray(50 * 32, 99), [50, 32]));
  const x = tf.tensor2d(randomArray(512 * 32, 100), [512, 32]);
  const labels = tf.tensor1d(
    Int32Array.from({ length: 512 }, (_, i) => (i * 7) % 50),
    'int32',
  );
  // Identity forward; its gradient runs when the backward pass reaches the first layer, and
  // notes how many bytes TF.js holds then.
  const probe = tf.customGrad(((t: tf.Tensor, _save: tf.GradSaveFunc) => ({
    value: t.clone(),
    gradFunc: (dy: tf.Tensor) => {
      held.bytes = tf.memory().numBytes;
      return dy.clone();
    },
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  const held = { bytes: 0 };
  const loss = (): tf.Scalar => {
    let h: tf.Tensor2D = x;
    layers.forEach((w, i) => {
      h = tf.add(h, tf.relu(tf.matMul(h, w)).mul(0.1)) as tf.Tensor2D;
      if (i === 0) h = probe(h) as tf.Tensor2D;
    });
    const [, unused] = tf.split(h, 2, 1);
    unused!.square(); // recorded, not on the path to the loss
    const losses = chunkedPrefixSoftmaxCrossEntropy(h, head, null, labels, [8, 16, 32], { chunk: 16 });
    return tf.add(tf.sum(losses), tf.mul(tf.sum(tf.square(h)), 1e-3)) as tf.Scalar;
  };
  return { vars: [...layers, head], loss, held, dispose: () => tf.dispose([...layers, head, x, labels]) };
}

async function gradsAndPeak(on: boolean) {
  freeDuringBackward(on);
  const s = setup();
  const before = tf.memory().numTensors;
  let grads: Float32Array[] = [];
  let value = 0;
  const info = await tf.profile(() => {
    const r = tf.variableGrads(s.loss, s.vars);
    value = r.value.dataSync()[0]!;
    grads = s.vars.map((v) => r.grads[v.name]!.dataSync() as Float32Array);
    tf.dispose([r.value, ...Object.values(r.grads)]);
  });
  const leaked = tf.memory().numTensors - before;
  s.dispose();
  return { value, grads, peak: info.peakBytes, leaked, late: s.held.bytes };
}

describe.each(['cpu', 'wasm'] as const)('freeDuringBackward on %s', (backend) => {
  beforeAll(async () => {
    if (backend === 'wasm') {
      await tf.setBackend('wasm');
      registerWasmTrainingKernels(NATIVE_OPTIONS[1]![1]);
    }
    await tf.setBackend(backend);
  });
  afterAll(() => freeDuringBackward(false));

  it('gives the same gradients, leaks nothing, and holds far less late in the backward pass', async () => {
    const shipped = await gradsAndPeak(false);
    const early = await gradsAndPeak(true);
    expect(early.value).toBe(shipped.value);
    early.grads.forEach((g, i) => {
      expect(Array.from(g)).toEqual(Array.from(shipped.grads[i]!));
      expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(0);
    });
    expect(early.leaked).toBe(0);
    expect(shipped.leaked).toBe(0);
    // Near the end of the backward pass, the activations and gradients of the 39 later layers
    // are gone; the step's peak (reached at the end of the forward pass here) does not rise.
    expect(early.late).toBeLessThan(shipped.late * 0.5);
    expect(early.peak).toBeLessThanOrEqual(shipped.peak);
  });

  it("leaves the caller's dy, nested gradients and gradients of intermediates intact", () => {
    freeDuringBackward(true);
    const x = tf.tensor1d([0.5, -1, 2]);
    const dy = tf.tensor1d([1, 2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.mul(tf.sin(t), tf.exp(t)))(x, dy);
    expect(dy.isDisposed).toBe(false);
    const expected = [0.5, -1, 2].map((v, i) => (Math.cos(v) + Math.sin(v)) * Math.exp(v) * (i + 1));
    Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
    // d2/dx2 of x^3 = 6x: a gradient taken inside a gradient.
    const second = tf.grad((t: tf.Tensor) => tf.grad((u: tf.Tensor) => tf.pow(u, 3))(t))(x);
    Array.from(second.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(6 * [0.5, -1, 2][i]!, 3));
    // The gradient with respect to an intermediate that is also on the tape.
    const { grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b)))([x, tf.exp(x)]);
    expect(grads[0]!.isDisposed).toBe(false);
    Array.from(grads[0]!.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(Math.exp([0.5, -1, 2][i]!), 4));
    tf.dispose([x, dy, g, second, ...grads]);
  });

  it('releases the inputs that a bias add saves only for their shapes, with the same gradients', () => {
    const x = tf.tensor2d(randomArray(64 * 16, 7), [64, 16]);
    const w = tf.variable(tf.tensor2d(randomArray(16 * 32, 8), [16, 32]));
    const b = tf.variable(tf.tensor1d(randomArray(32, 9)));
    const run = (on: boolean) => {
      freeDuringBackward(on);
      let held = 0;
      const before = tf.memory().numBytes;
      const { value, grads } = tf.variableGrads(() => {
        // The product before the bias is needed by nothing in the backward pass.
        const y = tf.tidy(() => tf.add(tf.matMul(x, w as tf.Tensor2D), b));
        held = tf.memory().numBytes - before;
        return tf.sum(tf.square(y));
      }, [w, b]);
      const out = {
        held,
        value: value.dataSync()[0]!,
        gw: Array.from(grads[w.name]!.dataSync()),
        gb: Array.from(grads[b.name]!.dataSync()),
      };
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const shipped = run(false);
    const early = run(true);
    expect(early.value).toBe(shipped.value);
    expect(early.gw).toEqual(shipped.gw);
    expect(early.gb).toEqual(shipped.gb);
    // Add saved clones of the [64, 32] product and of b; both go at once.
    expect(shipped.held - early.held).toBe((64 * 32 + 32) * 4);
    expect(SHAPE_ONLY_SAVED_KERNELS).toContain('Add');
    tf.dispose([x, w, b]);
  });

  it('keeps the saved inputs of a gradient registered over a shape-only one', () => {
    freeDuringBackward(true);
    const shipped = tf.getGradient('Add')!;
    // A gradient that reads the saved values: d(a + b)/da taken as b, a made-up rule.
    tf.registerGradient({
      kernelName: 'Add',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, saved) => ({
        a: () => tf.mul(dy as tf.Tensor, saved[1]!),
        b: () => tf.mul(dy as tf.Tensor, saved[0]!),
      }),
    });
    try {
      const a = tf.tensor1d([1, 2, 3]);
      const c = tf.tensor1d([4, 5, 6]);
      const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.tidy(() => tf.add(tf.mul(p, 1), q))))([a, c]);
      expect(Array.from(g[0]!.dataSync())).toEqual([4, 5, 6]);
      expect(Array.from(g[1]!.dataSync())).toEqual([1, 2, 3]);
      tf.dispose([a, c, ...g]);
    } finally {
      tf.registerGradient(shipped);
    }
    expect(tf.getGradient('Add')).toBe(shipped);
  });

  it('gives the same gradients through every kernel whose saved inputs it releases', () => {
    // Each kernel of SHAPE_ONLY_SAVED_KERNELS on an intermediate (so its saved input is a tensor of
    // its own): should a TF.js upgrade make one of these gradients read values, it throws or
    // differs here.
    const w = tf.variable(tf.tensor2d(randomArray(4 * 6, 11), [4, 6]));
    const c = tf.tensor2d(randomArray(4 * 6, 12), [4, 6]);
    const uses: Record<string, (h: tf.Tensor2D) => tf.Tensor> = {
      Add: (h) => tf.add(h, tf.tensor1d([1, 2, 3, 4, 5, 6])),
      Sub: (h) => tf.sub(tf.tensor1d([1, 2, 3, 4, 5, 6]), h),
      Reshape: (h) => tf.reshape(h, [8, 3]),
      ExpandDims: (h) => tf.expandDims(h, 1),
      Slice: (h) => tf.slice(h, [1, 2], [2, 3]),
      PadV2: (h) =>
        tf.pad(
          h,
          [
            [1, 0],
            [0, 2],
          ],
          0.5,
        ),
      Concat: (h) => tf.concat([h, tf.square(h)], 1),
      Pack: (h) => tf.stack([h, tf.square(h)]),
      Sum: (h) => tf.sum(h, 1),
      Mean: (h) => tf.mean(h, 0),
    };
    expect(Object.keys(uses).sort()).toEqual([...SHAPE_ONLY_SAVED_KERNELS].sort());
    for (const [kernel, use] of Object.entries(uses)) {
      const grad = (on: boolean) => {
        freeDuringBackward(on);
        const before = tf.memory().numTensors;
        const { value, grads } = tf.variableGrads(() => {
          const y = tf.tidy(() => use(tf.mul(w, c) as tf.Tensor2D)); // [4, 6] intermediate
          return tf.sum(tf.mul(y, tf.sin(y)));
        }, [w]);
        const out = Array.from(grads[w.name]!.dataSync());
        tf.dispose([value, ...Object.values(grads)]);
        expect(tf.memory().numTensors, kernel).toBe(before);
        return out;
      };
      const early = grad(true);
      expect(early, kernel).toEqual(grad(false));
      expect(Math.max(...early.map(Math.abs)), kernel).toBeGreaterThan(0);
    }
    tf.dispose([w, c]);
  });
});

import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '../../src/index.js';
import type { ConvGeometry, NativeKernels } from '../../src/native/onnxruntime.js';
import { expectClose, expectKernelMatchesCpu, randomArray, randomHost } from './close.js';

export type Shape4 = [number, number, number, number];

/** One NHWC convolution to run through two kernel sets. */
export interface ConvCase {
  name: string;
  x: Shape4; // NHWC
  filter: Shape4; // [fh, fw, Cin, Cout]
  strides: [number, number];
  pads: [number, number, number, number]; // top, left, bottom, right
  dilations?: [number, number];
}

/** Element count of a shape. */
export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The output shape of a {@link ConvCase}. */
export const convOut = (c: ConvCase): Shape4 => {
  const [n, h, w] = c.x;
  const [fh, fw, , cOut] = c.filter;
  const [top, left, bottom, right] = c.pads;
  const [dh, dw] = c.dilations ?? [1, 1];
  return [
    n,
    Math.floor((h + top + bottom - (fh - 1) * dh - 1) / c.strides[0]) + 1,
    Math.floor((w + left + right - (fw - 1) * dw - 1) / c.strides[1]) + 1,
    cOut,
  ];
};

export const convGeometry = (c: ConvCase): ConvGeometry => ({
  strides: c.strides,
  dilations: c.dilations ?? [1, 1],
  pads: c.pads,
});

/**
 * The three convolutions of a {@link ConvCase} through a kernel set, on random inputs seeded from
 * `seed` (forward seed, seed + 1; input gradient seed + 2, seed + 3; filter gradient seed + 4,
 * seed + 5), so that two kernel sets see the same inputs.
 *
 * @example
 * ```ts
 * const { forward } = convRunners(41);
 * expectClose(forward(nchwc, c), forward(im2col, c), 1e-5);
 * ```
 */
export function convRunners(seed: number): {
  forward(kernels: NativeKernels, c: ConvCase): Float32Array;
  inputGrad(kernels: NativeKernels, c: ConvCase): Float32Array;
  filterGrad(kernels: NativeKernels, c: ConvCase): Float32Array;
} {
  return {
    forward(kernels, c) {
      const y = new Float32Array(size(convOut(c)));
      const x = randomArray(size(c.x), seed);
      kernels.conv2d(x, c.x, randomArray(size(c.filter), seed + 1), c.filter, y, convOut(c), convGeometry(c));
      return y;
    },
    inputGrad(kernels, c) {
      const dx = new Float32Array(size(c.x));
      const dy = convOut(c);
      const w = randomArray(size(c.filter), seed + 3);
      kernels.conv2dBackpropInput(randomArray(size(dy), seed + 2), dy, w, c.filter, dx, c.x, convGeometry(c));
      return dx;
    },
    filterGrad(kernels, c) {
      const dw = new Float32Array(size(c.filter));
      const dy = convOut(c);
      kernels.conv2dBackpropFilter(
        randomArray(size(c.x), seed + 4),
        c.x,
        randomArray(size(dy), seed + 5),
        dy,
        dw,
        c.filter,
        {
          ...convGeometry(c),
          // As the TF.js kernel calls it: the pads after are whatever covers the taps.
          pads: [c.pads[0], c.pads[1], 0, 0],
        },
      );
      return dw;
    },
  };
}

/**
 * Checks tf.grads of sum(conv2d(x, w, stride, 'same') * r) for x and for w against central
 * differences, on the backend and kernels registered now. The loss is linear in each argument,
 * so a wide step is exact up to rounding; every 13th entry of x and every 37th of w is probed.
 *
 * @example
 * ```ts
 * expectConvGradsMatchCentralDifferences({ x: [2, 6, 5, 16], w: [3, 3, 16, 16], stride: 1, seed: 49 });
 * ```
 */
export function expectConvGradsMatchCentralDifferences(c: {
  x: Shape4;
  w: Shape4;
  stride: number;
  seed: number;
}): void {
  const outShape: Shape4 = [c.x[0], Math.ceil(c.x[1] / c.stride), Math.ceil(c.x[2] / c.stride), c.w[3]];
  const xs = randomHost(c.x, c.seed);
  const ws = randomHost(c.w, c.seed + 1);
  const rs = randomHost(outShape, c.seed + 2);
  const r = tf.tensor4d(rs.values, outShape);
  const loss = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(x, w, c.stride, 'same'), r));
  const x = tf.tensor4d(xs.values, c.x);
  const w = tf.tensor4d(ws.values, c.w);
  const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(a as tf.Tensor4D, b as tf.Tensor4D))([x, w]);
  const eps = 0.5;
  const check = (host: typeof xs, grad: tf.Tensor, which: 'x' | 'w', every: number): void => {
    const analytic = grad.dataSync();
    const numeric: number[] = [];
    const picked: number[] = [];
    for (let k = 0; k < host.values.length; k += every) {
      const at = (delta: number) =>
        tf.tidy(() => {
          const v = Float32Array.from(host.values);
          v[k]! += delta;
          const t = tf.tensor4d(v, host.shape as Shape4);
          return loss(which === 'x' ? t : x, which === 'w' ? t : w).dataSync()[0]!;
        });
      numeric.push((at(eps) - at(-eps)) / (2 * eps));
      picked.push(analytic[k]!);
    }
    expect(picked.length).toBeGreaterThan(50);
    expectClose(picked, numeric, 1e-4);
  };
  check(xs, gx!, 'x', 13);
  check(ws, gw!, 'w', 37);
  tf.dispose([x, w, r, gx!, gw!]);
}

/**
 * The wasm backend's three convolution kernels on `native` against the cpu backend (to 1e-5), and
 * their gradients against central differences; `restore` is registered again afterwards.
 * `stride` is that of the input-gradient and gradient checks (the path under test may only take
 * some strides); `seed` starts the inputs' seeds.
 *
 * @example
 * ```ts
 * describeConvKernelsOnWasm('oneDNN', { native: auto, restore: ort, stride: 2, seed: 69 });
 * ```
 */
export function describeConvKernelsOnWasm(
  label: string,
  c: { native: NativeKernels; restore: NativeKernels; stride: 1 | 2; seed: number },
): void {
  describe(`TF.js kernels on ${label}: values match cpu, gradients match central differences`, () => {
    beforeAll(async () => {
      await tf.setBackend('wasm');
      registerWasmTrainingKernels({ native: c.native });
    });
    afterAll(() => {
      registerWasmTrainingKernels({ native: c.restore });
    });

    it('Conv2D, stride 2 same, matches cpu to 1e-5', async () => {
      await expectKernelMatchesCpu(
        'Conv2D',
        { x: randomHost([2, 10, 10, 16], c.seed), filter: randomHost([3, 3, 16, 32], c.seed + 1) },
        { strides: 2, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
        1e-5,
      );
    });

    it(`Conv2DBackpropInput, stride ${c.stride} same, matches cpu to 1e-5`, async () => {
      const side = 10 / c.stride;
      await expectKernelMatchesCpu(
        'Conv2DBackpropInput',
        { dy: randomHost([2, side, side, 32], c.seed + 2), filter: randomHost([3, 3, 16, 32], c.seed + 3) },
        { strides: c.stride, pad: 'same', dataFormat: 'NHWC', inputShape: [2, 10, 10, 16] },
        1e-5,
      );
    });

    it('Conv2DBackpropFilter, stride 1 same, matches cpu to 1e-5', async () => {
      await expectKernelMatchesCpu(
        'Conv2DBackpropFilter',
        { x: randomHost([2, 8, 8, 16], c.seed + 4), dy: randomHost([2, 8, 8, 32], c.seed + 5) },
        { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 16, 32] },
        1e-5,
      );
    });

    it(`tf.grads of sum(conv2d(x, w, stride ${c.stride}) * r) for x and w match central differences`, async () => {
      await tf.setBackend('wasm');
      expectConvGradsMatchCentralDifferences({
        x: [2, 7, 6, 16],
        w: [3, 3, 16, 16],
        stride: c.stride,
        seed: c.seed + 6,
      });
    });
  });
}

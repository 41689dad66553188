import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { expectClose, randomHost } from './close.js';

type Shape4 = [number, number, number, number];

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

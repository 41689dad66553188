import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

/**
 * Asserts two float arrays agree elementwise within `tol`, relative to the element and to the
 * RMS of `expected`: |a - e| <= tol * (|e| + rms(expected)). The RMS term keeps entries that
 * cancel to near zero (common in sums of thousands of products) from failing on rounding alone.
 * Lengths must match; NaN only matches NaN.
 *
 * @example
 * ```ts
 * expectClose(wasmResult, cpuResult, 1e-4);
 * ```
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length, 'length').toBe(expected.length);
  let sumSq = 0;
  for (let i = 0; i < expected.length; i++) sumSq += expected[i]! * expected[i]!;
  const rms = expected.length === 0 ? 0 : Math.sqrt(sumSq / expected.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) || Number.isNaN(e)) {
      expect(Number.isNaN(a) && Number.isNaN(e), `NaN mismatch at ${i}: actual ${a}, expected ${e}`).toBe(true);
      continue;
    }
    const scale = Math.abs(e) + rms;
    const err = scale === 0 ? Math.abs(a - e) : Math.abs(a - e) / scale;
    if (err > worst) {
      worst = err;
      worstAt = i;
    }
  }
  expect(
    worst,
    `worst relative error ${worst.toExponential(2)} at ${worstAt}: actual ${actual[worstAt]}, expected ${expected[worstAt]}`,
  ).toBeLessThanOrEqual(tol);
}

/**
 * Runs `fn` with `backend` active (checking that tfjs did not silently fall back to another)
 * and returns what it returns; return plain arrays (dataSync copies), not tensors.
 */
export async function onBackend<T>(backend: 'cpu' | 'wasm', fn: () => T): Promise<T> {
  await tf.setBackend(backend);
  expect(tf.getBackend()).toBe(backend);
  return fn();
}

/** Deterministic uniform(-1, 1) floats (mulberry32), so both backends see the same inputs. */
export function randomArray(size: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** A tensor's contents on the host, to build the same input on each backend. */
export interface HostTensor {
  values: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype?: 'float32' | 'int32' | 'bool';
}

/** A float32 HostTensor of deterministic random values. */
export function randomHost(shape: number[], seed: number): HostTensor {
  return {
    values: randomArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  };
}

/**
 * Runs one kernel on `backend` and returns its output's shape and a copy of its values. Also
 * checks that the backend holds no more data than before: a kernel that leaks intermediates fails.
 */
export async function kernelOn(
  backend: 'cpu' | 'wasm',
  kernelName: string,
  inputs: Record<string, HostTensor>,
  attrs: object,
): Promise<{ shape: number[]; values: Float32Array | Int32Array | Uint8Array }> {
  return onBackend(backend, () => {
    const dataBefore = tf.backend().numDataIds();
    const tensors: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(inputs)) tensors[name] = tf.tensor(t.values, t.shape, t.dtype ?? 'float32');
    const out = tf.engine().runKernel(kernelName, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
    const result = { shape: out.shape, values: out.dataSync().slice() };
    tf.dispose([out, ...Object.values(tensors)]);
    expect(tf.backend().numDataIds(), `${kernelName} leaked backend data`).toBe(dataBefore);
    return result;
  });
}

/** Runs a kernel on cpu and on wasm and asserts equal shapes and values within `tol`. */
export async function expectKernelMatchesCpu(
  kernelName: string,
  inputs: Record<string, HostTensor>,
  attrs: object,
  tol = 1e-4,
): Promise<void> {
  const cpu = await kernelOn('cpu', kernelName, inputs, attrs);
  const wasm = await kernelOn('wasm', kernelName, inputs, attrs);
  expect(wasm.shape).toEqual(cpu.shape);
  expectClose(wasm.values, cpu.values, tol);
}

/**
 * `fn()`, with every tensor it makes disposed at its end: for a test that returns plain arrays
 * read from tensors (`tf.tidy` takes only tensor results, and walks large typed arrays in them).
 */
export function withScope<T>(fn: () => T): T {
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}

// The convolutions on MLAS's NCHWc kernels (a filter reordered inside the graph, see
// nchwcConvModel in src/native/onnxruntime.ts) against the im2col graphs they replace, the cpu
// backend and central differences. Widths are forced to 0 so that small shapes take them.
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';

import { loadOnnxRuntimeKernels, NCHWC_MIN_WIDTH } from '../src/native/onnxruntime.js';
import type { ConvGeometry, NativeKernels } from '../src/native/onnxruntime.js';
import { expectClose, randomArray } from './helpers/close.js';
import { describeConvKernelsOnWasm } from './helpers/conv-grad.js';

type Shape4 = [number, number, number, number];

const unavailable = (): never => {
  throw new Error('onnxruntime-node did not load: run pnpm install (it is an optional dependency of @mrl/kernels).');
};
const im2col = loadOnnxRuntimeKernels({ nchwc: false, convolution: 'onnxruntime' }) ?? unavailable();
const nchwc =
  loadOnnxRuntimeKernels({ nchwcMinWidth: { forward: 0, inputGradient: 0 }, convolution: 'onnxruntime' }) ??
  unavailable();

interface Case {
  name: string;
  x: Shape4; // NHWC
  filter: Shape4; // [fh, fw, Cin, Cout]
  strides: [number, number];
  pads: [number, number, number, number]; // top, left, bottom, right
}

const out = (c: Case): Shape4 => {
  const [n, h, w] = c.x;
  const [fh, fw, , cOut] = c.filter;
  const [top, left, bottom, right] = c.pads;
  return [
    n,
    Math.floor((h + top + bottom - fh) / c.strides[0]) + 1,
    Math.floor((w + left + right - fw) / c.strides[1]) + 1,
    cOut,
  ];
};
const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const geometry = (c: Case): ConvGeometry => ({ strides: c.strides, dilations: [1, 1], pads: c.pads });

// Channels are multiples of 16, so they fit both blocks (8 with AVX2, 16 with AVX-512).
const FORWARD: Case[] = [
  {
    name: 'RGB stem (Cin below the block)',
    x: [2, 12, 10, 3],
    filter: [3, 3, 3, 32],
    strides: [1, 1],
    pads: [1, 1, 1, 1],
  },
  { name: 'ResNet-18 layer 1 shape', x: [2, 16, 16, 32], filter: [3, 3, 32, 32], strides: [1, 1], pads: [1, 1, 1, 1] },
  {
    name: 'stride 2, same (pads only after)',
    x: [2, 16, 16, 32],
    filter: [3, 3, 32, 64],
    strides: [2, 2],
    pads: [0, 0, 1, 1],
  },
  { name: 'ResNet-18 layer 4 shape', x: [2, 4, 4, 64], filter: [3, 3, 64, 64], strides: [1, 1], pads: [1, 1, 1, 1] },
  {
    name: 'valid, non-square input and filter',
    x: [3, 9, 7, 16],
    filter: [3, 2, 16, 48],
    strides: [1, 1],
    pads: [0, 0, 0, 0],
  },
  {
    name: 'strides [2, 1], asymmetric pads',
    x: [2, 9, 8, 32],
    filter: [3, 3, 32, 16],
    strides: [2, 1],
    pads: [2, 0, 1, 1],
  },
];

// Stride 1, as the input gradient runs there: even filters give asymmetric padding.
const INPUT_GRAD: Case[] = [
  { name: 'ResNet-18 layer 1 shape', x: [2, 16, 16, 32], filter: [3, 3, 32, 32], strides: [1, 1], pads: [1, 1, 1, 1] },
  { name: 'Cin != Cout', x: [2, 8, 10, 16], filter: [3, 3, 16, 48], strides: [1, 1], pads: [1, 1, 1, 1] },
  { name: 'even 2x2 filter, same', x: [2, 7, 6, 32], filter: [2, 2, 32, 16], strides: [1, 1], pads: [0, 0, 1, 1] },
  { name: 'valid 3x3', x: [2, 9, 9, 16], filter: [3, 3, 16, 16], strides: [1, 1], pads: [0, 0, 0, 0] },
];

function forward(kernels: NativeKernels, c: Case): Float32Array {
  const y = new Float32Array(size(out(c)));
  kernels.conv2d(randomArray(size(c.x), 41), c.x, randomArray(size(c.filter), 42), c.filter, y, out(c), geometry(c));
  return y;
}

function inputGrad(kernels: NativeKernels, c: Case): Float32Array {
  const dx = new Float32Array(size(c.x));
  const dy = out(c);
  kernels.conv2dBackpropInput(
    randomArray(size(dy), 43),
    dy,
    randomArray(size(c.filter), 44),
    c.filter,
    dx,
    c.x,
    geometry(c),
  );
  return dx;
}

describe('convolutions on the NCHWc kernels equal the im2col graphs', () => {
  it('an x64 machine runs the NCHWc kernels (block 8 or 16), so the comparisons below test them', () => {
    // MLAS has NCHWc kernels for x64 (AVX2, AVX-512) only; elsewhere every convolution stays on im2col.
    if (process.arch === 'x64') expect(nchwc.detail).toMatch(/NCHWc block (8|16)\b/);
    else expect(nchwc.detail).not.toMatch(/NCHWc/);
    expect(im2col.detail).not.toMatch(/NCHWc/);
  });

  it('by default narrow outputs stay on im2col (widths below which it was no faster)', () => {
    expect(NCHWC_MIN_WIDTH.forward).toBeGreaterThan(4);
    expect(NCHWC_MIN_WIDTH.inputGradient).toBeGreaterThan(8);
  });

  for (const c of FORWARD) {
    it(`forward, ${c.name}, to 1e-5`, () => {
      expectClose(forward(nchwc, c), forward(im2col, c), 1e-5);
    });
  }

  for (const c of INPUT_GRAD) {
    it(`input gradient, ${c.name}, to 1e-5`, () => {
      expectClose(inputGrad(nchwc, c), inputGrad(im2col, c), 1e-5);
    });
  }

  it('on 2 threads: the same bits run after run, equal to 1 thread to 1e-5', () => {
    const twoThreads =
      loadOnnxRuntimeKernels({
        threads: 2,
        nchwcMinWidth: { forward: 0, inputGradient: 0 },
        convolution: 'onnxruntime',
      }) ?? unavailable();
    for (const c of [FORWARD[1]!, FORWARD[2]!]) {
      const first = forward(twoThreads, c);
      expect(forward(twoThreads, c)).toEqual(first);
      expectClose(first, forward(nchwc, c), 1e-5);
    }
    const c = INPUT_GRAD[0]!;
    const first = inputGrad(twoThreads, c);
    expect(inputGrad(twoThreads, c)).toEqual(first);
    expectClose(first, inputGrad(nchwc, c), 1e-5);
  });

  it('refuses a minimum width that is not a non-negative integer, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ nchwcMinWidth: { forward: 8, inputGradient: -1 } })).toThrow(
      'nchwcMinWidth.inputGradient must be a non-negative integer (an output width), got -1.',
    );
    expect(() => loadOnnxRuntimeKernels({ nchwcMinWidth: { forward: 2.5, inputGradient: 16 } })).toThrow(
      'nchwcMinWidth.forward must be a non-negative integer (an output width), got 2.5.',
    );
  });

  it('a channel count off the block keeps the im2col graph (same values)', () => {
    const c: Case = {
      name: 'odd channels',
      x: [2, 8, 8, 12],
      filter: [3, 3, 12, 20],
      strides: [1, 1],
      pads: [1, 1, 1, 1],
    };
    expectClose(forward(nchwc, c), forward(im2col, c), 1e-6);
    expectClose(inputGrad(nchwc, c), inputGrad(im2col, c), 1e-6);
  });
});

describeConvKernelsOnWasm('NCHWc', { native: nchwc, restore: im2col, stride: 1, seed: 45 });

// The convolutions on MLAS's NCHWc kernels (a filter reordered inside the graph, see
// nchwcConvModel in src/native/onnxruntime.ts) against the im2col graphs they replace, the cpu
// backend and central differences. Widths are forced to 0 so that small shapes take them.
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';

import { loadOnnxRuntimeKernels, NCHWC_MIN_WIDTH } from '../src/native/onnxruntime.js';
import { expectClose } from './helpers/close.js';
import { type ConvCase, convRunners, describeConvKernelsOnWasm } from './helpers/conv.js';
import { nativeKernels } from './helpers/onednn.js';

const im2col = nativeKernels({ nchwc: false, convolution: 'onnxruntime' });
const nchwc = nativeKernels({ nchwcMinWidth: { forward: 0, inputGradient: 0 }, convolution: 'onnxruntime' });
const { forward, inputGrad } = convRunners(41);

// Channels are multiples of 16, so they fit both blocks (8 with AVX2, 16 with AVX-512).
const FORWARD: ConvCase[] = [
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
const INPUT_GRAD: ConvCase[] = [
  { name: 'ResNet-18 layer 1 shape', x: [2, 16, 16, 32], filter: [3, 3, 32, 32], strides: [1, 1], pads: [1, 1, 1, 1] },
  { name: 'Cin != Cout', x: [2, 8, 10, 16], filter: [3, 3, 16, 48], strides: [1, 1], pads: [1, 1, 1, 1] },
  { name: 'even 2x2 filter, same', x: [2, 7, 6, 32], filter: [2, 2, 32, 16], strides: [1, 1], pads: [0, 0, 1, 1] },
  { name: 'valid 3x3', x: [2, 9, 9, 16], filter: [3, 3, 16, 16], strides: [1, 1], pads: [0, 0, 0, 0] },
];

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
    const twoThreads = nativeKernels({
      threads: 2,
      nchwcMinWidth: { forward: 0, inputGradient: 0 },
      convolution: 'onnxruntime',
    });
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
    const c: ConvCase = {
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

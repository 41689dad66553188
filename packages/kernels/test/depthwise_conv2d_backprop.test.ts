import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { expectClose, expectKernelMatchesCpu, kernelOn, randomHost } from './helpers/close.js';
import type { HostTensor } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  x: Shape4;
  filter: Shape4; // [fh, fw, C, multiplier]
  strides: number | [number, number];
  dilations: number | [number, number];
  pad: Pad;
}

const CASES: Case[] = [
  { name: 'stride 1 same', x: [2, 8, 8, 5], filter: [3, 3, 5, 1], strides: 1, dilations: 1, pad: 'same' },
  { name: 'stride 2 same', x: [2, 8, 8, 5], filter: [3, 3, 5, 1], strides: 2, dilations: 1, pad: 'same' },
  { name: 'stride 2 valid, non-square', x: [3, 9, 7, 4], filter: [3, 2, 4, 1], strides: 2, dilations: 1, pad: 'valid' },
  { name: 'channel multiplier 3', x: [2, 6, 7, 3], filter: [3, 3, 3, 3], strides: 1, dilations: 1, pad: 'same' },
  {
    name: 'multiplier 2, strides [2, 1]',
    x: [2, 7, 6, 4],
    filter: [2, 3, 4, 2],
    strides: [2, 1],
    dilations: 1,
    pad: 'same',
  },
  {
    name: 'explicit padding',
    x: [2, 6, 6, 3],
    filter: [3, 3, 3, 1],
    strides: 2,
    dilations: 1,
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
];

function dyShape(c: Case): Shape4 {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad, undefined, true).outShape;
}

/**
 * Both gradients by the definition, for dilation: the cpu kernels ignore `dilations` (tfjs-core
 * never asks for dilated depthwise gradients), so they cannot be the reference there.
 */
function naive(c: Case, x: HostTensor, dy: HostTensor, w: HostTensor) {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, c.dilations, c.pad, undefined, true);
  const [n, h, wd, ch] = c.x;
  const [fh, fw, , m] = c.filter;
  const dW = new Float32Array(fh * fw * ch * m);
  const dX = new Float32Array(n * h * wd * ch);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < info.outHeight; y++)
      for (let xx = 0; xx < info.outWidth; xx++)
        for (let i = 0; i < fh; i++)
          for (let j = 0; j < fw; j++) {
            const r = y * info.strideHeight + i * info.dilationHeight - info.padInfo.top;
            const col = xx * info.strideWidth + j * info.dilationWidth - info.padInfo.left;
            if (r < 0 || r >= h || col < 0 || col >= wd) continue;
            for (let p = 0; p < ch; p++)
              for (let k = 0; k < m; k++) {
                const g = dy.values[((b * info.outHeight + y) * info.outWidth + xx) * ch * m + p * m + k]!;
                dW[((i * fw + j) * ch + p) * m + k]! += x.values[((b * h + r) * wd + col) * ch + p]! * g;
                dX[((b * h + r) * wd + col) * ch + p]! += w.values[((i * fw + j) * ch + p) * m + k]! * g;
              }
          }
  return { dW, dX };
}

describe('depthwise conv backprops on wasm', () => {
  const dilated: Case[] = [
    { name: 'dilation 2, valid', x: [2, 9, 9, 3], filter: [3, 3, 3, 1], strides: 1, dilations: 2, pad: 'valid' },
    {
      name: 'dilation [1, 2], same, multiplier 2',
      x: [1, 8, 9, 2],
      filter: [3, 3, 2, 2],
      strides: 1,
      dilations: [1, 2],
      pad: 'same',
    },
  ];
  for (const c of dilated) {
    it(`both gradients with ${c.name} match the definition`, async () => {
      const x = randomHost(c.x, 105);
      const dy = randomHost(dyShape(c), 106);
      const w = randomHost(c.filter, 107);
      const ref = naive(c, x, dy, w);
      const attrs = { strides: c.strides, dilations: c.dilations, pad: c.pad };
      const dW = await kernelOn(
        'wasm',
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy },
        { ...attrs, filterShape: c.filter },
      );
      const dX = await kernelOn(
        'wasm',
        'DepthwiseConv2dNativeBackpropInput',
        { dy, filter: w },
        { ...attrs, inputShape: c.x },
      );
      expect(dW.shape).toEqual(c.filter);
      expect(dX.shape).toEqual(c.x);
      expectClose(dW.values, ref.dW);
      expectClose(dX.values, ref.dX);
    });
  }

  for (const c of CASES) {
    it(`DepthwiseConv2dNativeBackpropFilter, ${c.name}, matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'DepthwiseConv2dNativeBackpropFilter',
        { x: randomHost(c.x, 101), dy: randomHost(dyShape(c), 102) },
        { strides: c.strides, dilations: c.dilations, pad: c.pad, filterShape: c.filter },
      );
    });
    it(`DepthwiseConv2dNativeBackpropInput, ${c.name}, matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: randomHost(dyShape(c), 103), filter: randomHost(c.filter, 104) },
        { strides: c.strides, dilations: c.dilations, pad: c.pad, inputShape: c.x },
      );
    });
  }
});

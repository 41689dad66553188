import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { expectClose, expectKernelMatchesCpu, kernelOn, onBackend, randomArray, randomHost } from './helpers/close.js';
import type { HostTensor } from './helpers/close.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerWasmTrainingKernels();
});

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const CASES: Case[] = [
  { name: 'stride 1 same', x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: 'stride 2 same', x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: 'stride 2 same, odd input', x: [2, 9, 7, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  {
    name: 'stride 1 valid, non-square input and filter',
    x: [3, 9, 7, 2],
    filter: [3, 2, 2, 5],
    strides: 1,
    pad: 'valid',
  },
  { name: 'stride 2 valid, last row unused', x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { name: 'strides [2, 3] same', x: [1, 10, 9, 4], filter: [2, 3, 4, 3], strides: [2, 3], pad: 'same' },
  { name: 'even 4x4 filter, stride 2 same', x: [2, 8, 8, 3], filter: [4, 4, 3, 2], strides: 2, pad: 'same' },
  { name: '1x1 filter, stride 2', x: [2, 7, 6, 5], filter: [1, 1, 5, 3], strides: 2, pad: 'valid' },
  {
    name: 'explicit asymmetric padding, strides [1, 2]',
    x: [2, 6, 7, 3],
    filter: [3, 3, 3, 2],
    strides: [1, 2],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  {
    name: 'padding wider than the filter, stride 1',
    x: [1, 5, 5, 2],
    filter: [3, 3, 2, 3],
    strides: 1,
    pad: [
      [0, 0],
      [3, 3],
      [3, 3],
      [0, 0],
    ],
  },
  {
    name: 'padding wider than the filter, stride 2, asymmetric',
    x: [2, 7, 8, 2],
    filter: [3, 2, 2, 3],
    strides: 2,
    pad: [
      [0, 0],
      [4, 1],
      [2, 3],
      [0, 0],
    ],
  },
  { name: 'explicit pad 2 with 3x3 filter, stride 2', x: [1, 6, 6, 2], filter: [3, 3, 2, 2], strides: 2, pad: 2 },
  {
    name: 'stride 3 with a 2x2 filter (taps miss some rows)',
    x: [2, 9, 10, 3],
    filter: [2, 2, 3, 4],
    strides: 3,
    pad: 'valid',
  },
  {
    name: '1x1 filter, stride 4, pad 0, ceil (reads past the edge)',
    x: [2, 6, 6, 3],
    filter: [1, 1, 3, 2],
    strides: 4,
    pad: 0,
    dimRoundingMode: 'ceil',
  },
  {
    name: 'numeric pad 1, stride 2, ceil',
    x: [2, 7, 7, 2],
    filter: [3, 3, 2, 3],
    strides: 2,
    pad: 1,
    dimRoundingMode: 'ceil',
  },
  { name: 'NCHW stride 2 same', x: [2, 3, 8, 7], filter: [3, 3, 3, 4], strides: 2, pad: 'same', dataFormat: 'NCHW' },
  { name: 'ResNet-ish 16 -> 16 channels', x: [4, 16, 16, 16], filter: [3, 3, 16, 16], strides: 2, pad: 'same' },
];

const POINTWISE: Case[] = [
  {
    name: 'ResNet-18 shortcut 64 -> 128, stride 2',
    x: [2, 32, 32, 64],
    filter: [1, 1, 64, 128],
    strides: 2,
    pad: 'same',
  },
  {
    name: 'ResNet-18 shortcut 256 -> 512, stride 2',
    x: [2, 8, 8, 256],
    filter: [1, 1, 256, 512],
    strides: 2,
    pad: 'valid',
  },
  { name: 'odd sizes, strides [3, 2], valid', x: [2, 7, 8, 5], filter: [1, 1, 5, 3], strides: [3, 2], pad: 'valid' },
  { name: 'stride 1', x: [3, 5, 4, 6], filter: [1, 1, 6, 7], strides: 1, pad: 'same' },
];

function dyShape(c: Case, dilations: number | [number, number] = 1): Shape4 {
  const format = c.dataFormat === 'NCHW' ? 'channelsFirst' : 'channelsLast';
  const info = tf.backend_util.computeConv2DInfo(
    c.x,
    c.filter,
    c.strides,
    dilations,
    c.pad,
    c.dimRoundingMode,
    false,
    format,
  );
  return info.outShape;
}

function attrs(c: Case) {
  return {
    strides: c.strides,
    pad: c.pad,
    dataFormat: c.dataFormat ?? 'NHWC',
    dimRoundingMode: c.dimRoundingMode,
    inputShape: c.x,
  };
}

/** dX by the definition, NHWC, for attributes the cpu kernel lacks (dilation). */
function naiveInputGrad(dy: HostTensor, w: HostTensor, c: Case, dilations: [number, number]): Float32Array {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, dilations, c.pad);
  const [n, h, wd, ci] = c.x;
  const [fh, fw, , co] = c.filter;
  const out = new Float32Array(n * h * wd * ci);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < info.outHeight; y++)
      for (let xx = 0; xx < info.outWidth; xx++)
        for (let i = 0; i < fh; i++)
          for (let j = 0; j < fw; j++) {
            const r = y * info.strideHeight + i * dilations[0] - info.padInfo.top;
            const col = xx * info.strideWidth + j * dilations[1] - info.padInfo.left;
            if (r < 0 || r >= h || col < 0 || col >= wd) continue;
            for (let p = 0; p < ci; p++)
              for (let o = 0; o < co; o++)
                out[((b * h + r) * wd + col) * ci + p]! +=
                  w.values[((i * fw + j) * ci + p) * co + o]! *
                  dy.values[((b * info.outHeight + y) * info.outWidth + xx) * co + o]!;
          }
  return out;
}

describe.each(NATIVE_OPTIONS)('Conv2DBackpropInput on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  for (const c of CASES) {
    it(`${c.name} matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'Conv2DBackpropInput',
        { dy: randomHost(dyShape(c), 21), filter: randomHost(c.filter, 22) },
        attrs(c),
      );
    });
  }

  for (const pad of ['same', 'valid'] as const) {
    it(`dilation [1, 2] (our extension), ${pad}, matches the definition`, async () => {
      const c: Case = { name: 'dilated', x: [2, 8, 9, 3], filter: [2, 3, 3, 4], strides: 1, pad };
      const dy = randomHost(dyShape(c, [1, 2]), 23);
      const filter = randomHost(c.filter, 24);
      const wasm = await kernelOn('wasm', 'Conv2DBackpropInput', { dy, filter }, { ...attrs(c), dilations: [1, 2] });
      expect(wasm.shape).toEqual(c.x);
      expectClose(wasm.values, naiveInputGrad(dy, filter, c, [1, 2]));
    });
  }

  // Stride 1 runs natively as a forward Conv with the rotated filter (ConvTranspose otherwise):
  // ResNet-18's layer shapes, and an even filter whose 'same' padding is asymmetric.
  for (const c of [
    { name: 'ResNet-18 layer 1', x: [2, 8, 8, 64], filter: [3, 3, 64, 64], strides: 1, pad: 'same' },
    { name: 'ResNet-18 layer 4', x: [2, 4, 4, 512], filter: [3, 3, 512, 512], strides: 1, pad: 'same' },
    { name: 'even 2x2 filter, same', x: [2, 7, 6, 3], filter: [2, 2, 3, 5], strides: 1, pad: 'same' },
  ] satisfies Case[]) {
    it(`stride 1, ${c.name}, matches cpu to 1e-5`, async () => {
      await expectKernelMatchesCpu(
        'Conv2DBackpropInput',
        { dy: randomHost(dyShape(c), 27), filter: randomHost(c.filter, 28) },
        attrs(c),
        1e-5,
      );
    });
  }

  // 1x1 without padding runs natively as a product over channels, its results interleaved with
  // zeros for a stride: ResNet-18's shortcuts, odd sizes, unequal strides, stride 1.
  for (const c of POINTWISE) {
    it(`1x1, ${c.name}, matches cpu to 1e-5`, async () => {
      await expectKernelMatchesCpu(
        'Conv2DBackpropInput',
        { dy: randomHost(dyShape(c), 29), filter: randomHost(c.filter, 30) },
        attrs(c),
        1e-5,
      );
    });
  }

  it('tf.conv2dTranspose (a user of the kernel) matches cpu', async () => {
    const dyVals = randomArray(2 * 4 * 5 * 6, 25);
    const wVals = randomArray(3 * 3 * 2 * 6, 26);
    const run = () => {
      const out = tf.tidy(() =>
        tf.conv2dTranspose(
          tf.tensor4d(dyVals, [2, 4, 5, 6]),
          tf.tensor4d(wVals, [3, 3, 2, 6]),
          [2, 8, 10, 2],
          2,
          'same',
        ),
      );
      const values = out.dataSync().slice();
      out.dispose();
      return values;
    };
    expectClose(await onBackend('wasm', run), await onBackend('cpu', run));
  });
});

describe.each(NATIVE_OPTIONS)('Conv2D on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  // The shipped wasm Conv2D takes NHWC only, and where ceil rounding reads past the edge it
  // disagrees with cpu (such a geometry stays on it: ONNX's Conv cannot express it).
  for (const c of CASES.filter((k) => k.dataFormat !== 'NCHW' && !k.name.includes('reads past the edge'))) {
    it(`${c.name} matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'Conv2D',
        { x: randomHost(c.x, 31), filter: randomHost(c.filter, 32) },
        { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1, dimRoundingMode: c.dimRoundingMode },
      );
    });
  }

  for (const c of POINTWISE) {
    it(`1x1, ${c.name}, matches cpu to 1e-5`, async () => {
      await expectKernelMatchesCpu(
        'Conv2D',
        { x: randomHost(c.x, 35), filter: randomHost(c.filter, 36) },
        { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1 },
        1e-5,
      );
    });
  }

  it('dilation [2, 1], same, matches cpu', async () => {
    await expectKernelMatchesCpu(
      'Conv2D',
      { x: randomHost([2, 9, 8, 3], 33), filter: randomHost([3, 2, 3, 4], 34) },
      { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: [2, 1] },
    );
  });
});

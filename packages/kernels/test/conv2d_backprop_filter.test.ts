import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { registerWasmTrainingKernels } from '../src/index.js';
import { createConv2DBackpropFilterKernel } from '../src/wasm/conv2d_backprop_filter.js';
import { loadOnnxRuntimeKernels } from '../src/native/onnxruntime.js';
import { NATIVE_OPTIONS } from './helpers/native-kernels.js';
import { expectClose, expectKernelMatchesCpu, kernelOn, randomHost } from './helpers/close.js';
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
  {
    name: 'stride 1 valid, non-square input and filter',
    x: [3, 9, 7, 2],
    filter: [3, 2, 2, 5],
    strides: 1,
    pad: 'valid',
  },
  { name: 'stride 2 valid, last row unused', x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { name: 'strides [2, 3] same, odd sizes', x: [1, 10, 9, 4], filter: [2, 3, 4, 3], strides: [2, 3], pad: 'same' },
  { name: 'even 4x4 filter, stride 2 same', x: [2, 8, 8, 3], filter: [4, 4, 3, 2], strides: 2, pad: 'same' },
  { name: '1x1 filter, stride 2 valid', x: [2, 7, 6, 5], filter: [1, 1, 5, 3], strides: 2, pad: 'valid' },
  { name: '1x1 filter, stride 1', x: [3, 5, 4, 6], filter: [1, 1, 6, 7], strides: 1, pad: 'same' },
  { name: '1x1 filter, strides [2, 3] same', x: [2, 9, 8, 4], filter: [1, 1, 4, 5], strides: [2, 3], pad: 'same' },
  {
    name: '1x1 filter, padding after only',
    x: [2, 5, 4, 3],
    filter: [1, 1, 3, 2],
    strides: 1,
    pad: [
      [0, 0],
      [0, 1],
      [0, 2],
      [0, 0],
    ],
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
    name: '1x1 filter, explicit padding',
    x: [2, 5, 5, 3],
    filter: [1, 1, 3, 2],
    strides: 2,
    pad: [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 0],
    ],
  },
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
    name: 'numeric pad 1, stride 2, ceil',
    x: [2, 7, 7, 2],
    filter: [3, 3, 2, 3],
    strides: 2,
    pad: 1,
    dimRoundingMode: 'ceil',
  },
  { name: 'NCHW stride 2 same', x: [2, 3, 8, 7], filter: [3, 3, 3, 4], strides: 2, pad: 'same', dataFormat: 'NCHW' },
  { name: 'ResNet-ish 16 -> 16 channels', x: [4, 16, 16, 16], filter: [3, 3, 16, 16], strides: 1, pad: 'same' },
  // im2col in chunks of output rows (K = 4608 -> 16 rows a chunk): two chunks summed.
  { name: 'im2col in 2 chunks, 512 channels', x: [3, 8, 8, 512], filter: [3, 3, 512, 4], strides: 1, pad: 'same' },
  // K = 2700 -> 21 rows a chunk of 30, stride 2 with padding after only: a partial last chunk.
  { name: 'im2col in uneven chunks, stride 2', x: [5, 12, 12, 300], filter: [3, 3, 300, 3], strides: 2, pad: 'same' },
  {
    name: 'im2col, 4x4 stride 4 valid (ViT patch embedding)',
    x: [2, 16, 16, 3],
    filter: [4, 4, 3, 8],
    strides: 4,
    pad: 'valid',
  },
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
    filterShape: c.filter,
  };
}

/** dW by the definition, NHWC, for attributes the cpu kernel lacks (dilation). */
function naiveFilterGrad(x: HostTensor, dy: HostTensor, c: Case, dilations: [number, number]): Float32Array {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, dilations, c.pad);
  const [n, h, w, ci] = c.x;
  const [fh, fw, , co] = c.filter;
  const out = new Float32Array(fh * fw * ci * co);
  for (let i = 0; i < fh; i++)
    for (let j = 0; j < fw; j++)
      for (let b = 0; b < n; b++)
        for (let y = 0; y < info.outHeight; y++)
          for (let xx = 0; xx < info.outWidth; xx++) {
            const r = y * info.strideHeight + i * dilations[0] - info.padInfo.top;
            const col = xx * info.strideWidth + j * dilations[1] - info.padInfo.left;
            if (r < 0 || r >= h || col < 0 || col >= w) continue;
            for (let p = 0; p < ci; p++)
              for (let o = 0; o < co; o++)
                out[((i * fw + j) * ci + p) * co + o]! +=
                  x.values[((b * h + r) * w + col) * ci + p]! *
                  dy.values[((b * info.outHeight + y) * info.outWidth + xx) * co + o]!;
          }
  return out;
}

describe.each(NATIVE_OPTIONS)('Conv2DBackpropFilter on wasm (kernels: %s)', (_name, options) => {
  beforeAll(() => {
    registerWasmTrainingKernels(options);
  });

  for (const c of CASES) {
    it(`${c.name} matches cpu`, async () => {
      await expectKernelMatchesCpu(
        'Conv2DBackpropFilter',
        { x: randomHost(c.x, 11), dy: randomHost(dyShape(c), 12) },
        attrs(c),
      );
    });
  }

  for (const pad of ['same', 'valid'] as const) {
    it(`dilation [2, 1] (our extension), ${pad}, matches the definition`, async () => {
      const c: Case = { name: 'dilated', x: [2, 9, 8, 3], filter: [3, 2, 3, 4], strides: 1, pad };
      const x = randomHost(c.x, 13);
      const dy = randomHost(dyShape(c, [2, 1]), 14);
      const wasm = await kernelOn('wasm', 'Conv2DBackpropFilter', { x, dy }, { ...attrs(c), dilations: [2, 1] });
      expect(wasm.shape).toEqual(c.filter);
      expectClose(wasm.values, naiveFilterGrad(x, dy, c, [2, 1]));
    });
  }

  it('rejects a dy whose shape does not match the convolution', async () => {
    const c = CASES[0]!;
    await expect(
      kernelOn('wasm', 'Conv2DBackpropFilter', { x: randomHost(c.x, 1), dy: randomHost([2, 4, 4, 4], 2) }, attrs(c)),
    ).rejects.toThrow(/dy has shape \[2, 4, 4, 4\], expected \[2, 8, 8, 4\]/);
  });
});

describe('Conv2DBackpropFilter on native kernels, in chunks', () => {
  it('sums chunks of a few output rows (uneven last chunk) to the cpu result', async () => {
    registerWasmTrainingKernels({ native: loadOnnxRuntimeKernels()! });
    const registered = tf.getKernel('Conv2DBackpropFilter', 'wasm')!;
    const shipped = {
      Conv2D: tf.getKernel('Conv2D', 'wasm')!,
      Transpose: tf.getKernel('Transpose', 'wasm')!,
      BatchMatMul: tf.getKernel('BatchMatMul', 'wasm')!,
    };
    // 3 output rows of 7 pixels by K = 27 per chunk: 14 rows make 5 chunks, the last of 2 rows.
    const chunked = createConv2DBackpropFilterKernel(
      (name) => shipped[name as keyof typeof shipped],
      loadOnnxRuntimeKernels()!,
      3 * 7 * 27,
      false,
    );
    tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
    tf.registerKernel(chunked);
    try {
      const c: Case = { name: 'chunked', x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' };
      await expectKernelMatchesCpu(
        'Conv2DBackpropFilter',
        { x: randomHost(c.x, 15), dy: randomHost(dyShape(c), 16) },
        attrs(c),
      );
    } finally {
      tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
      tf.registerKernel(registered);
    }
  });
});

describe('Conv2DBackpropFilter on native kernels: one graph against im2col + GEMM', () => {
  const native = loadOnnxRuntimeKernels()!;
  const shipped = () => ({
    Conv2D: tf.getKernel('Conv2D', 'wasm')!,
    Transpose: tf.getKernel('Transpose', 'wasm')!,
    BatchMatMul: tf.getKernel('BatchMatMul', 'wasm')!,
  });
  /** dW of `c` with the Conv2DBackpropFilter kernel swapped for `config` while it runs. */
  async function withKernel(config: tf.KernelConfig, x: HostTensor, dy: HostTensor, c: Case, dilations = 1) {
    const registered = tf.getKernel('Conv2DBackpropFilter', 'wasm')!;
    tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
    tf.registerKernel(config);
    try {
      return await kernelOn('wasm', 'Conv2DBackpropFilter', { x, dy }, { ...attrs(c), dilations });
    } finally {
      tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
      tf.registerKernel(registered);
    }
  }
  const nhwc = CASES.filter((c) => c.dataFormat !== 'NCHW' && c.filter[0] * c.filter[1] > 1);
  const resnet: Case[] = [
    { name: 'ResNet-18 layer 1', x: [2, 32, 32, 64], filter: [3, 3, 64, 64], strides: 1, pad: 'same' },
    { name: 'ResNet-18 layer 4', x: [2, 4, 4, 512], filter: [3, 3, 512, 512], strides: 1, pad: 'same' },
    { name: 'ResNet-18 downsampling 3x3', x: [2, 8, 8, 128], filter: [3, 3, 128, 256], strides: 2, pad: 'same' },
  ];
  for (const c of [...nhwc, ...resnet]) {
    it(`${c.name}: the graph equals im2col to 1e-5`, async () => {
      registerWasmTrainingKernels({ native });
      const get = (name: string) => shipped()[name as keyof ReturnType<typeof shipped>];
      const x = randomHost(c.x, 31);
      const dy = randomHost(dyShape(c), 32);
      const graph = await withKernel(createConv2DBackpropFilterKernel(get, native), x, dy, c);
      const im2col = await withKernel(createConv2DBackpropFilterKernel(get, native, undefined, false), x, dy, c);
      expect(graph.shape).toEqual(c.filter);
      expectClose(graph.values, im2col.values, 1e-5);
    });
  }

  it('dilation [2, 1], stride 2: the graph matches the definition', async () => {
    registerWasmTrainingKernels({ native });
    const c: Case = { name: 'dilated', x: [2, 11, 9, 3], filter: [3, 2, 3, 4], strides: 2, pad: 'same' };
    const x = randomHost(c.x, 33);
    const dy = randomHost(dyShape(c, [2, 1]), 34);
    const wasm = await kernelOn('wasm', 'Conv2DBackpropFilter', { x, dy }, { ...attrs(c), dilations: [2, 1] });
    expectClose(wasm.values, naiveFilterGrad(x, dy, c, [2, 1]), 1e-5);
  });

  it('tf.grad of sum(conv2d(x, w) * r) with respect to w matches central differences', async () => {
    registerWasmTrainingKernels({ native });
    const xs = randomHost([2, 7, 6, 5], 35);
    const ws = randomHost([3, 3, 5, 4], 36);
    const rs = randomHost([2, 4, 3, 4], 37); // stride 2, same: 7x6 -> 4x3
    const x = tf.tensor4d(xs.values, xs.shape as Shape4);
    const r = tf.tensor4d(rs.values, rs.shape as Shape4);
    const loss = (w: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(x, w, 2, 'same'), r));
    const w = tf.tensor4d(ws.values, ws.shape as Shape4);
    const grad = tf.grad(loss)(w);
    const analytic = grad.dataSync().slice();
    // The loss is linear in w, so a wide step is exact up to rounding.
    const eps = 0.5;
    const numeric: number[] = [];
    const picked: number[] = [];
    for (let k = 0; k < ws.values.length; k += 7) {
      const at = (delta: number) =>
        tf.tidy(() => {
          const v = Float32Array.from(ws.values);
          v[k]! += delta;
          return loss(tf.tensor4d(v, ws.shape as Shape4)).dataSync()[0]!;
        });
      numeric.push((at(eps) - at(-eps)) / (2 * eps));
      picked.push(analytic[k]!);
    }
    expectClose(picked, numeric, 1e-4);
    tf.dispose([x, r, w, grad]);
  });
});

// The convolutions on oneDNN (the optional addon, src/native/onednn.ts and native/onednn.cc)
// against ONNX Runtime's graphs that they replace, on ResNet-18's shapes, the cpu backend and
// central differences; and the fallback to ONNX Runtime where the addon is absent, which runs
// here always (a fresh module instance under MRL_ONEDNN=off) as well as on machines without it.
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';

import { oneDnnAvailable } from '../src/native/onednn.js';
import { type ConvGeometry, loadOnnxRuntimeKernels } from '../src/native/onnxruntime.js';
import { expectClose } from './helpers/close.js';
import { type ConvCase, convRunners, describeConvKernelsOnWasm } from './helpers/conv.js';
import { expectNeedsOneDnn, loaded, nativeKernels, ONEDNN_BUILDABLE, withOneDnnOff } from './helpers/onednn.js';

const ort = nativeKernels({ convolution: 'onnxruntime' });
/** The default kernels: convolutions on oneDNN where the addon loads, else the same as `ort`. */
const auto = nativeKernels();
const present = oneDnnAvailable();
const { forward, inputGrad, filterGrad } = convRunners(61);

// ResNet-18's convolutions at batch 2 (CIFAR 32x32 and the ImageNet stem), and padding variants.
const CASES: ConvCase[] = [
  { name: 'CIFAR stem 3x3, Cin 3', x: [2, 32, 32, 3], filter: [3, 3, 3, 64], strides: [1, 1], pads: [1, 1, 1, 1] },
  {
    name: 'ImageNet stem 7x7 stride 2, same',
    x: [2, 32, 32, 3],
    filter: [7, 7, 3, 64],
    strides: [2, 2],
    pads: [2, 2, 3, 3],
  },
  { name: 'stage 1, 3x3 64', x: [2, 32, 32, 64], filter: [3, 3, 64, 64], strides: [1, 1], pads: [1, 1, 1, 1] },
  {
    name: 'stage 2 entry, 3x3 stride 2, same (pads after only)',
    x: [2, 32, 32, 64],
    filter: [3, 3, 64, 128],
    strides: [2, 2],
    pads: [0, 0, 1, 1],
  },
  {
    name: 'stage 2 entry, 3x3 stride 2, torch padding 1',
    x: [2, 32, 32, 64],
    filter: [3, 3, 64, 128],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  },
  {
    name: '1x1 shortcut stride 2 (last row and column never read)',
    x: [2, 32, 32, 64],
    filter: [1, 1, 64, 128],
    strides: [2, 2],
    pads: [0, 0, 0, 0],
  },
  { name: 'stage 4, 3x3 512 at 4x4', x: [2, 4, 4, 512], filter: [3, 3, 512, 512], strides: [1, 1], pads: [1, 1, 1, 1] },
  {
    name: 'stage 4 entry, 3x3 stride 2 at 8x8',
    x: [2, 8, 8, 256],
    filter: [3, 3, 256, 512],
    strides: [2, 2],
    pads: [0, 0, 1, 1],
  },
  {
    name: 'valid, non-square input and filter, odd channels',
    x: [3, 9, 7, 12],
    filter: [3, 2, 12, 20],
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
  {
    name: 'dilation 2',
    x: [2, 11, 11, 16],
    filter: [3, 3, 16, 16],
    strides: [1, 1],
    pads: [2, 2, 2, 2],
    dilations: [2, 2],
  },
];

describe('the oneDNN addon: used where it is built, ONNX Runtime where it is not', () => {
  it('loads wherever setup can build it, and then runs the convolutions by default', () => {
    if (ONEDNN_BUILDABLE) {
      expect(present, 'libdnnl-dev is installed: run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    }
    if (present) {
      expect(auto.detail).toMatch(/\(MLAS.*\), convolutions on oneDNN \d+\.\d+\.\d+.*, 1 thread$/);
      expect(loadOnnxRuntimeKernels({ convolution: 'onednn' })?.detail).toMatch(/convolutions on oneDNN/);
    } else {
      expect(auto.detail).not.toMatch(/oneDNN/);
    }
    expect(ort.detail).not.toMatch(/convolutions on oneDNN/);
  });

  it('without the addon: ONNX Runtime runs the convolutions, and asking for oneDNN names the fix', async () => {
    await withOneDnnOff((fresh) => {
      const fallback = loaded(fresh.loadOnnxRuntimeKernels());
      expect(fallback.detail).not.toMatch(/oneDNN/);
      const c = CASES[3]!;
      expect(forward(fallback, c)).toEqual(forward(ort, c));
      expect(filterGrad(fallback, c)).toEqual(filterGrad(ort, c));
      expectNeedsOneDnn(
        () => fresh.loadOnnxRuntimeKernels({ convolution: 'onednn' }),
        "convolution 'onednn' needs the oneDNN addon (packages/kernels/native/build/onednn.node), which is not built, does not load here or is turned off (MRL_ONEDNN=off).",
      );
    });
  });

  it('refuses an unknown convolution source, naming it', () => {
    expect(() => loadOnnxRuntimeKernels({ convolution: 'mkl' as 'onednn' })).toThrow(
      'convolution must be one of onednn, onnxruntime, got "mkl".',
    );
  });
});

// Where the addon is absent `auto` is ONNX Runtime, and these compare it with itself (bit-equal).
describe('convolutions on oneDNN equal ONNX Runtime to 1e-5 (ResNet-18 shapes)', () => {
  for (const c of CASES) {
    it(`${c.name}: forward, input gradient, filter gradient`, () => {
      expectClose(forward(auto, c), forward(ort, c), 1e-5);
      expectClose(inputGrad(auto, c), inputGrad(ort, c), 1e-5);
      expectClose(filterGrad(auto, c), filterGrad(ort, c), 1e-5);
    });
  }

  it('an empty batch goes to ONNX Runtime (a filter gradient of zeros)', () => {
    const dw = new Float32Array(3 * 3 * 16 * 16).fill(Number.NaN);
    const geo: ConvGeometry = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 0, 0] };
    auto.conv2dBackpropFilter(
      new Float32Array(0),
      [0, 8, 8, 16],
      new Float32Array(0),
      [0, 8, 8, 16],
      dw,
      [3, 3, 16, 16],
      geo,
    );
    expect(dw.every((v) => v === 0)).toBe(true);
  });

  it('on 2 threads: the same bits run after run, equal to 1 thread to 1e-5', () => {
    const two = nativeKernels({ threads: 2 });
    for (const c of [CASES[2]!, CASES[3]!]) {
      for (const f of [forward, inputGrad, filterGrad]) {
        const first = f(two, c);
        expect(f(two, c)).toEqual(first);
        const one = f(auto, c);
        expect(f(auto, c)).toEqual(one);
        expectClose(first, one, 1e-5);
      }
    }
  });
});

describeConvKernelsOnWasm('oneDNN', { native: auto, restore: ort, stride: 2, seed: 69 });

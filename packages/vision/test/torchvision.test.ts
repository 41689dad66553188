import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, encodeSafetensors, initBackend, MrlError, readSafetensors } from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResNetEncoder } from '../src/models/resnet.js';
import {
  assignTorchvisionResNet,
  loadTorchvisionResNet,
  resnetConfigFromTorchvision,
} from '../src/models/torchvision.js';

// Written by fixtures/make_torchvision_resnet.py (Debian python3-torch + python3-torchvision).
const FIXTURE = join(import.meta.dirname, 'fixtures', 'torchvision-resnet');

interface Outputs {
  images: { shape: [number, number, number, number]; nhwc: number[] };
  basic: { layers: number[]; widths: number[]; features: number[]; width: number };
  bottleneck: { layers: number[]; widths: number[]; features: number[]; width: number };
}
let outputs: Outputs;
let scratch: string;
beforeAll(async () => {
  await initBackend('wasm');
  outputs = JSON.parse(await readFile(join(FIXTURE, 'outputs.json'), 'utf8')) as Outputs;
  scratch = await mkdtemp(join(tmpdir(), 'mrl-torchvision-'));
});
afterAll(async () => rm(scratch, { recursive: true, force: true }));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

const features = (encoder: ResNetEncoder): Float32Array =>
  tf.tidy(
    () => encoder.encode(tf.tensor4d(outputs.images.nhwc, outputs.images.shape), false).dataSync() as Float32Array,
  );

describe('loadTorchvisionResNet matches torchvision outputs within 1e-4', () => {
  for (const kind of ['basic', 'bottleneck'] as const) {
    it(`${kind} blocks: architecture read from the shapes, pooled features equal`, async () => {
      const encoder = await loadTorchvisionResNet(join(FIXTURE, `${kind}.safetensors`));
      expect(encoder.config.block).toBe(kind);
      expect(encoder.config.layers).toEqual(outputs[kind].layers);
      expect(encoder.config.widths).toEqual(outputs[kind].widths);
      expect(encoder.embeddingDim).toBe(outputs[kind].width);
      expect(encoder.projection).toBeNull();
      expect(maxDiff(features(encoder), outputs[kind].features)).toBeLessThan(1e-4);
      encoder.dispose();
    });
  }

  it("TF's 'same' padding does not match (the torch padding option matters)", async () => {
    const { tensors } = await readSafetensors(join(FIXTURE, 'basic.safetensors'));
    const encoder = new ResNetEncoder({ ...resnetConfigFromTorchvision(tensors), padding: 'same' }, createRandom(0));
    assignTorchvisionResNet(encoder, tensors, 'basic.safetensors');
    expect(maxDiff(features(encoder), outputs.basic.features)).toBeGreaterThan(1e-3);
    encoder.dispose();
  });

  it('adds a fresh projection when embeddingDim differs from the feature width', async () => {
    const encoder = await loadTorchvisionResNet(join(FIXTURE, 'basic.safetensors'), { embeddingDim: 8 });
    expect(encoder.projection).not.toBeNull();
    expect(features(encoder).length).toBe(2 * 8);
    encoder.dispose();
  });
});

describe('bad torchvision state dicts are named clearly', () => {
  async function withTensors(
    edit: (t: Map<string, { shape: number[]; data: Float32Array }>) => void,
  ): Promise<MrlError> {
    const { tensors } = await readSafetensors(join(FIXTURE, 'basic.safetensors'));
    const copy = new Map([...tensors].filter(([, t]) => t.data instanceof Float32Array)) as Map<
      string,
      { shape: number[]; data: Float32Array }
    >;
    edit(copy);
    const file = join(scratch, `case-${Math.random().toString(36).slice(2)}.safetensors`);
    await writeFile(file, encodeSafetensors(copy));
    const e = await loadTorchvisionResNet(file).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(MrlError.is(e), String(e)).toBe(true);
    return e as MrlError;
  }

  it('a missing tensor', async () => {
    const e = await withTensors((t) => t.delete('layer2.0.downsample.1.running_var'));
    expect(e.message).toMatch(
      /has no tensor 'layer2\.0\.downsample\.1\.running_var' \(shape \[8\]\) for the encoder's stage2\/block1\/shortcut\/bn\/running_var\.$/,
    );
  });

  it('an extra tensor', async () => {
    const e = await withTensors((t) => t.set('layer1.0.se.weight', { shape: [2], data: new Float32Array(2) }));
    expect(e.message).toMatch(/has 1 tensor\(s\) the ResNet encoder does not use: layer1\.0\.se\.weight\.$/);
  });

  it('a shape mismatch', async () => {
    const e = await withTensors((t) =>
      t.set('layer1.1.conv2.weight', { shape: [8, 8, 5, 5], data: new Float32Array(8 * 8 * 25) }),
    );
    expect(e.message).toMatch(
      /: tensor 'layer1\.1\.conv2\.weight' has shape \[8, 8, 5, 5\], the encoder needs \[8, 8, 3, 3\]\.$/,
    );
  });

  it('not a ResNet', async () => {
    const e = await withTensors((t) => t.delete('conv1.weight'));
    expect(e.kind).toBe('unsupported');
    expect(e.message).toMatch(/has no 4-D 'conv1\.weight': it is not a torchvision ResNet state dict\.$/);
  });
});

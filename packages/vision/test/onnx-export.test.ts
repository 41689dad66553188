import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, initBackend, readOnnxMetadata } from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resnetOnnxModel, vitOnnxModel } from '../src/models/onnx.js';
import { createVisionEncoder } from '../src/models/registry.js';
import { ResNetEncoder, type ResNetConfig } from '../src/models/resnet.js';
import { loadTorchvisionResNet } from '../src/models/torchvision.js';
import { VitEncoder } from '../src/models/vit.js';
import { expectClose } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const hasOnnx = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;
const FIXTURE = join(import.meta.dirname, 'fixtures', 'torchvision-resnet');

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'mrl-resnet-onnx-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** Runs a few steps of training so the batch-norm running statistics are not the initial 0 / 1. */
function warmStatistics(encoder: ResNetEncoder, shape: [number, number, number, number]): void {
  for (let i = 0; i < 3; i++) tf.tidy(() => encoder.encode(tf.randomNormal(shape, 0.3, 1.2, 'float32', 10 + i), true));
}

async function compare(encoder: ResNetEncoder, shape: [number, number, number, number], name: string): Promise<string> {
  const path = join(dir, `${name}.onnx`);
  await writeFile(path, resnetOnnxModel(encoder, [8, encoder.embeddingDim]));
  const images = tf.randomNormal(shape, 0, 1, 'float32', 5);
  const session = await ort.InferenceSession.create(path);
  const out = await session.run({ input: new ort.Tensor('float32', images.dataSync() as Float32Array, shape) });
  expectClose(out.embedding!.data as Float32Array, encoder.encode(images, false).dataSync(), 1e-4);
  expect(out.embedding!.dims).toEqual([shape[0], encoder.embeddingDim]);
  await session.release();
  images.dispose();
  return path;
}

describe("resnetOnnxModel: onnxruntime-node returns the encoder's embeddings (inference mode)", () => {
  it("resnet-tiny (CIFAR stem, TF 'same' padding as SAME_UPPER at stride 2)", async () => {
    const encoder = createVisionEncoder('resnet-tiny', { inputChannels: 1 }, createRandom(1)) as ResNetEncoder;
    warmStatistics(encoder, [4, 28, 28, 1]);
    const path = await compare(encoder, [3, 28, 28, 1], 'tiny');
    const { opset, metadata } = readOnnxMetadata(await import('node:fs').then((fs) => fs.readFileSync(path)));
    expect(opset).toBe(17);
    expect(JSON.parse(metadata['mrl.nesting_dims']!)).toEqual([8, 32]);
    expect(metadata['mrl.input_layout']).toBe('NHWC');
    encoder.dispose();
  });

  it("bottleneck blocks, ImageNet stem with 'same' max-pool, odd image size, and a projection", async () => {
    const config: ResNetConfig = {
      architecture: 'resnet-test',
      family: 'resnet',
      embeddingDim: 12,
      block: 'bottleneck',
      stem: 'imagenet',
      stemWidth: 8,
      layers: [1, 1],
      widths: [4, 8],
      inputChannels: 3,
    };
    const encoder = new ResNetEncoder(config, createRandom(2));
    warmStatistics(encoder, [4, 33, 33, 3]);
    await compare(encoder, [2, 33, 33, 3], 'bottleneck');
    encoder.dispose();
  });

  it('an imported torchvision ResNet (torch padding)', async () => {
    const encoder = await loadTorchvisionResNet(join(FIXTURE, 'basic.safetensors'));
    await compare(encoder, [2, 32, 32, 3], 'torchvision');
    encoder.dispose();
  });

  it.skipIf(!hasOnnx)(
    'passes onnx.checker (full check) (skipped only where Debian python3-onnx is absent)',
    async () => {
      const encoder = await loadTorchvisionResNet(join(FIXTURE, 'bottleneck.safetensors'), { embeddingDim: 16 });
      const path = join(dir, 'checked.onnx');
      await writeFile(path, resnetOnnxModel(encoder, [8, 16]));
      const check = spawnSync(
        PYTHON,
        [
          '-c',
          'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")',
          path,
        ],
        { encoding: 'utf8' },
      );
      expect(check.stderr).toBe('');
      expect(check.stdout.trim()).toBe('ok');
      encoder.dispose();
    },
  );
});

describe('vitOnnxModel', () => {
  it("onnxruntime-node returns the ViT's embeddings (with a projection)", async () => {
    const encoder = new VitEncoder(
      {
        architecture: 'vit-test',
        family: 'vit',
        embeddingDim: 12,
        imageSize: 16,
        patchSize: 4,
        inputChannels: 3,
        width: 16,
        depth: 2,
        heads: 4,
        mlpRatio: 2,
      },
      createRandom(4),
    );
    const path = join(dir, 'vit.onnx');
    await writeFile(path, vitOnnxModel(encoder, [4, 12]));
    const images = tf.randomNormal([3, 16, 16, 3], 0, 1, 'float32', 6);
    const session = await ort.InferenceSession.create(path);
    const out = await session.run({
      input: new ort.Tensor('float32', images.dataSync() as Float32Array, [3, 16, 16, 3]),
    });
    expectClose(out.embedding!.data as Float32Array, encoder.encode(images, false).dataSync(), 1e-4);
    await session.release();
    images.dispose();
    if (hasOnnx) {
      const check = spawnSync(
        PYTHON,
        ['-c', 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', path],
        {
          encoding: 'utf8',
        },
      );
      expect(check.stderr).toBe('');
    }
    encoder.dispose();
  });
});

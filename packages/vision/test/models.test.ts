import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  coreModule,
  createRandom,
  ENCODER_REGISTRATION,
  initBackend,
  MrlError,
  parameterCount,
  trainClassifier,
  type ArrayDataset,
  type EncoderRegistration,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { Container } from 'inversify';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../src/fashion-mnist.js';
import { createVisionEncoder, VISION_MODEL_NAMES, visionModelConfig, visionModule } from '../src/models/registry.js';
import { ResNetEncoder } from '../src/models/resnet.js';
import { loadVisionModel, saveVisionModel } from '../src/save.js';
import { expectClose, FASHION_MNIST_DIR, values } from './helpers.js';

let train: ArrayDataset;
beforeAll(async () => {
  await initBackend('wasm');
  const data = await loadFashionMnist(FASHION_MNIST_DIR);
  const n = 384;
  train = {
    inputs: data.train.images.subarray(0, n * 784),
    exampleShape: [28, 28, 1],
    labels: data.train.labels.subarray(0, n),
    count: n,
    numClasses: 10,
  };
});

describe('the vision model registry', () => {
  it('lists the known models when a name is unknown', () => {
    const error = (() => {
      try {
        createVisionEncoder('resnet19', {}, createRandom(0));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(MrlError.is(error) && error.kind).toBe('unknown-name');
    expect((error as MrlError).message).toBe("unknown vision model 'resnet19'.");
    expect((error as MrlError).fix).toBe(`Known models: ${VISION_MODEL_NAMES.join(', ')}.`);
    for (const name of ['resnet18-cifar', 'resnet34-cifar', 'resnet50', 'resnet-tiny', 'vit-tiny-patch4', 'vit-micro'])
      expect(VISION_MODEL_NAMES).toContain(name);
  });

  it('binds a registration per model in the DI module', async () => {
    const container = new Container();
    await container.load(coreModule, visionModule);
    const registrations = container.getAll<EncoderRegistration>(ENCODER_REGISTRATION);
    expect(registrations.map((r) => r.name).sort()).toEqual([...VISION_MODEL_NAMES].sort());
    const tiny = registrations.find((r) => r.name === 'vit-micro')!;
    const encoder = tiny.create({ ...tiny.defaults, embeddingDim: 8, inputChannels: 1 }, createRandom(0));
    expect(encoder.embeddingDim).toBe(8);
    encoder.dispose();
  });

  it('has the published ResNet shapes', () => {
    // ResNet-18 (CIFAR stem, no fc) has 11.17M parameters; ours adds no projection at d = 512.
    const r18 = createVisionEncoder('resnet18-cifar', {}, createRandom(0));
    expect(parameterCount(r18)).toBe(11168832);
    r18.dispose();
    expect(visionModelConfig('resnet50')).toMatchObject({
      block: 'bottleneck',
      stem: 'imagenet',
      layers: [3, 4, 6, 3],
      embeddingDim: 2048,
    });
  });

  it('runs bottleneck blocks with the ImageNet stem and projects to d', () => {
    const encoder = createVisionEncoder(
      'resnet50',
      { embeddingDim: 24, stemWidth: 4, widths: [2, 4, 4, 8], layers: [1, 1, 1, 1] },
      createRandom(0),
    ) as ResNetEncoder;
    expect(encoder.featureWidth).toBe(32); // 8 * 4 (bottleneck expansion)
    const z = encoder.encode(tf.randomNormal([2, 64, 64, 3]), false);
    expect(z.shape).toEqual([2, 24]);
    expect(encoder.variables().has('proj/w')).toBe(true);
    encoder.dispose();
  });

  it('halves the image in a stride-2 stem and keeps a linear embedding layer at d = width', () => {
    const small = createVisionEncoder('resnet-small', { inputChannels: 1 }, createRandom(0)) as ResNetEncoder;
    expect(small.featureWidth).toBe(128);
    expect(small.embeddingDim).toBe(128);
    expect(small.variables().get('proj/w')!.shape).toEqual([128, 128]); // `projection: 'always'`
    const stem = tf.tidy(() => small.stemConv.apply(tf.zeros([1, 28, 28, 1])));
    expect(stem.shape).toEqual([1, 14, 14, 16]);
    stem.dispose();
    const z = small.encode(tf.randomNormal([2, 28, 28, 1]), true);
    expect(z.shape).toEqual([2, 128]);
    expect(Math.min(...values(z))).toBeLessThan(0); // a pooled ReLU map alone could not be negative
    small.dispose();
    const auto = createVisionEncoder('resnet-small', { inputChannels: 1, projection: 'auto' }, createRandom(0));
    expect(auto.variables().has('proj/w')).toBe(false);
    auto.dispose();
  });

  it('rejects bad configs and inputs, naming the field', () => {
    expect(() => createVisionEncoder('resnet-small', { stemStride: 0 }, createRandom(0))).toThrow(
      "resnet config 'resnet-small': stemStride must be 1, 2, 3 or 4, got 0.",
    );
    expect(() => createVisionEncoder('resnet50', { stemStride: 2 }, createRandom(0))).toThrow(
      "resnet config 'resnet50': stemStride applies to the 'cifar' stem only",
    );
    expect(() => createVisionEncoder('resnet-small', { projection: 'never' as 'auto' }, createRandom(0))).toThrow(
      "resnet config 'resnet-small': projection must be 'auto' or 'always', got 'never'.",
    );
    expect(() => createVisionEncoder('resnet-tiny', { layers: [1, 1], widths: [8, 16, 32] }, createRandom(0))).toThrow(
      "resnet config 'resnet-tiny': layers [1,1] and widths [8,16,32] must be non-empty lists of the same length.",
    );
    expect(() => createVisionEncoder('vit-micro', { imageSize: 30 }, createRandom(0))).toThrow(
      "vit config 'vit-micro': imageSize 30 is not a multiple of patchSize 7.",
    );
    const encoder = createVisionEncoder('resnet-tiny', { inputChannels: 1 }, createRandom(0));
    expect(() => encoder.encode(tf.zeros([1, 28, 28, 3]), false)).toThrow(
      'resnet-tiny expects images [N, H, W, 1], got [1, 28, 28, 3].',
    );
    encoder.dispose();
  });
});

async function lossCurve(name: string, steps: number, lr: number): Promise<number[]> {
  const before = tf.memory().numTensors;
  const encoder = createVisionEncoder(name, { embeddingDim: 16, inputChannels: 1, imageSize: 28 }, createRandom(1));
  const losses: number[] = [];
  const run = await trainClassifier({
    encoder,
    train,
    dims: [4, 8, 16],
    head: 'separate',
    trainer: {
      steps,
      batchSize: 64,
      seed: 0,
      optimizer: { type: 'adamw', lr },
      onEvent: (e) => e.type === 'step' && losses.push(e.loss),
    },
  });
  encoder.dispose();
  tf.dispose([...run.head.variables().values()]);
  expect(tf.memory().numTensors).toBe(before);
  return losses;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('training', () => {
  it('a tiny ResNet trains a few steps and its loss drops, without leaking tensors', async () => {
    const losses = await lossCurve('resnet-tiny', 12, 0.01);
    // Three heads start at about 3 ln 10 = 6.9; twelve steps on a cosine schedule take off > 0.5.
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.5);
  });

  it('a tiny ViT trains a few steps and its loss drops, without leaking tensors', async () => {
    const losses = await lossCurve('vit-micro', 12, 0.003);
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.5);
  });
});

describe('save and load', () => {
  it('reloads ResNet (with batch-norm running statistics) and ViT weights to identical embeddings', async () => {
    const x = tf.tensor4d(train.inputs.subarray(0, 8 * 784), [8, 28, 28, 1]);
    for (const name of ['resnet-tiny', 'vit-micro']) {
      const encoder = createVisionEncoder(name, { embeddingDim: 12, inputChannels: 1, imageSize: 28 }, createRandom(3));
      encoder.encode(x, true).dispose(); // moves the running statistics away from their initial values
      const dir = await mkdtemp(join(tmpdir(), `mrl-${name}-`));
      await saveVisionModel(dir, encoder);
      const loaded = await loadVisionModel(dir);
      expect(loaded.config).toEqual(encoder.config);
      expect(values(loaded.encode(x, false))).toEqual(values(encoder.encode(x, false)));
      if (name === 'resnet-tiny')
        expectClose(
          values(loaded.variables().get('stem/bn/running_mean')!),
          values(encoder.variables().get('stem/bn/running_mean')!),
          0,
        );
      encoder.dispose();
      loaded.dispose();
    }
  });

  it('names the missing file or tensor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mrl-broken-'));
    await expect(loadVisionModel(dir)).rejects.toThrow(`cannot read the model config ${join(dir, 'config.json')}`);
    const encoder = createVisionEncoder('resnet-tiny', { embeddingDim: 32 }, createRandom(0)); // 32 = final width: no projection
    await saveVisionModel(dir, encoder);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...encoder.config, embeddingDim: 16 }));
    await expect(loadVisionModel(dir)).rejects.toThrow(`${join(dir, 'weights.safetensors')} has no tensor 'proj/w'`);
    encoder.dispose();
  });
});

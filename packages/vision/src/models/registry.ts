import {
  ENCODER_REGISTRATION,
  MlpEncoder,
  MrlError,
  type Encoder,
  type EncoderConfig,
  type EncoderRegistration,
  type MlpConfig,
  type Random,
} from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import { ContainerModule } from 'inversify';
import { ResNetEncoder, type ResNetConfig } from './resnet.js';
import { VitEncoder, type VitConfig } from './vit.js';

/** Every config a vision encoder can be built from. */
export type VisionEncoderConfig = ResNetConfig | VitConfig | MlpConfig;

interface VisionModelEntry {
  description: string;
  defaults: VisionEncoderConfig;
}

type ResNetShape = Pick<ResNetConfig, 'embeddingDim' | 'block' | 'stem' | 'stemWidth' | 'layers' | 'widths'> &
  Partial<Pick<ResNetConfig, 'stemStride' | 'projection'>>;
type VitShape = Pick<VitConfig, 'embeddingDim' | 'imageSize' | 'patchSize' | 'width' | 'depth' | 'heads' | 'mlpRatio'>;
const resnet = (architecture: string, rest: ResNetShape): ResNetConfig => ({
  architecture,
  family: 'resnet',
  inputChannels: 3,
  ...rest,
});
const vit = (architecture: string, rest: VitShape): VitConfig => ({
  architecture,
  family: 'vit',
  inputChannels: 3,
  ...rest,
});

/**
 * The named vision architectures (timm's `@register_model`, open_clip's model configs). The
 * `-cifar` ResNets use the 3x3 stride-1 stem for 28-32 px images; `resnet50` is the ImageNet
 * shape (7x7 stride-2 stem + max-pool, bottleneck blocks).
 */
export const VISION_MODELS: Readonly<Record<string, VisionModelEntry>> = {
  mlp: {
    description: 'multi-layer perceptron on flattened pixels (784-512-256-d)',
    defaults: { architecture: 'mlp', embeddingDim: 64, inputDim: 784, hidden: [512, 256] },
  },
  'resnet-tiny': {
    description: 'ResNet, basic blocks [1,1,1], widths 8/16/32, CIFAR stem: for tests and CI',
    defaults: resnet('resnet-tiny', {
      embeddingDim: 32,
      block: 'basic',
      stem: 'cifar',
      stemWidth: 8,
      layers: [1, 1, 1],
      widths: [8, 16, 32],
    }),
  },
  'resnet-small': {
    description:
      'ResNet, basic blocks [1,1,1,1], widths 16/32/64/128, 3x3 stride-2 stem, linear embedding layer, d=128: the Fashion-MNIST model',
    defaults: resnet('resnet-small', {
      embeddingDim: 128,
      block: 'basic',
      stem: 'cifar',
      stemStride: 2,
      stemWidth: 16,
      layers: [1, 1, 1, 1],
      widths: [16, 32, 64, 128],
      projection: 'always',
    }),
  },
  'resnet8-cifar': {
    description: 'ResNet-8, basic blocks [1,1,1], widths 16/32/64, CIFAR stem: the small CPU model',
    defaults: resnet('resnet8-cifar', {
      embeddingDim: 64,
      block: 'basic',
      stem: 'cifar',
      stemWidth: 16,
      layers: [1, 1, 1],
      widths: [16, 32, 64],
    }),
  },
  'resnet18-cifar': {
    description: 'ResNet-18, basic blocks [2,2,2,2], widths 64..512, CIFAR stem',
    defaults: resnet('resnet18-cifar', {
      embeddingDim: 512,
      block: 'basic',
      stem: 'cifar',
      stemWidth: 64,
      layers: [2, 2, 2, 2],
      widths: [64, 128, 256, 512],
    }),
  },
  'resnet34-cifar': {
    description: 'ResNet-34, basic blocks [3,4,6,3], widths 64..512, CIFAR stem',
    defaults: resnet('resnet34-cifar', {
      embeddingDim: 512,
      block: 'basic',
      stem: 'cifar',
      stemWidth: 64,
      layers: [3, 4, 6, 3],
      widths: [64, 128, 256, 512],
    }),
  },
  resnet50: {
    description: 'ResNet-50, bottleneck blocks [3,4,6,3], ImageNet stem, d=2048',
    defaults: resnet('resnet50', {
      embeddingDim: 2048,
      block: 'bottleneck',
      stem: 'imagenet',
      stemWidth: 64,
      layers: [3, 4, 6, 3],
      widths: [64, 128, 256, 512],
    }),
  },
  'vit-micro': {
    description: 'ViT, 28 px, patch 7, width 32, depth 2, 2 heads: for tests and CI',
    defaults: vit('vit-micro', {
      embeddingDim: 32,
      imageSize: 28,
      patchSize: 7,
      width: 32,
      depth: 2,
      heads: 2,
      mlpRatio: 2,
    }),
  },
  'vit-tiny-patch4': {
    description: 'ViT-Tiny (DeiT-Ti shape: width 192, depth 12, 3 heads), patch 4, 32 px',
    defaults: vit('vit-tiny-patch4', {
      embeddingDim: 192,
      imageSize: 32,
      patchSize: 4,
      width: 192,
      depth: 12,
      heads: 3,
      mlpRatio: 4,
    }),
  },
};

export const VISION_MODEL_NAMES: readonly string[] = Object.keys(VISION_MODELS);

/** Builds an encoder from a full config (e.g. one read back from `config.json`). */
export function buildVisionEncoder(config: EncoderConfig, random: Random): Encoder<tf.Tensor> {
  if (config.family === 'resnet') return new ResNetEncoder(config as ResNetConfig, random);
  if (config.family === 'vit') return new VitEncoder(config as VitConfig, random);
  if (config.architecture === 'mlp') return new MlpEncoder(config as MlpConfig, random);
  throw new MrlError(
    'invalid-config',
    `encoder config '${config.architecture}' has family '${String(config.family)}'; expected 'resnet', 'vit' or architecture 'mlp'.`,
  );
}

/** The default config of a named model; an unknown name throws and lists the known ones. */
export function visionModelConfig(name: string, overrides: Partial<VisionEncoderConfig> = {}): VisionEncoderConfig {
  const entry = VISION_MODELS[name];
  if (entry === undefined) {
    throw new MrlError(
      'unknown-name',
      `unknown vision model '${name}'.`,
      `Known models: ${VISION_MODEL_NAMES.join(', ')}.`,
    );
  }
  return { ...structuredClone(entry.defaults), ...overrides, architecture: name } as VisionEncoderConfig;
}

/**
 * Builds a named vision encoder with some fields overridden.
 *
 * @example
 * ```ts
 * const encoder = createVisionEncoder('resnet-tiny', { embeddingDim: 64, inputChannels: 1 }, createRandom(0));
 * ```
 */
export function createVisionEncoder(
  name: string,
  overrides: Partial<VisionEncoderConfig>,
  random: Random,
): Encoder<tf.Tensor> {
  return buildVisionEncoder(visionModelConfig(name, overrides), random);
}

/** Binds an `EncoderRegistration` for each vision model except `mlp` (core's module binds it). */
export const visionModule = new ContainerModule((options) => {
  for (const [name, entry] of Object.entries(VISION_MODELS)) {
    if (name === 'mlp') continue;
    options.bind<EncoderRegistration>(ENCODER_REGISTRATION).toConstantValue({
      name,
      modality: 'vision',
      description: entry.description,
      defaults: entry.defaults,
      create: (config, random) => buildVisionEncoder({ ...config, architecture: name }, random) as Encoder<unknown>,
    });
  }
});

import {
  coreModule,
  ENCODER_REGISTRATION,
  MrlError,
  type Encoder,
  type EncoderConfig,
  type EncoderRegistration,
  type Modality,
  type Random,
} from '@mrl/core';
import { textModule, type TokenBatch } from '@mrl/text';
import { visionModule } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import { Container, ContainerModule } from 'inversify';
import { DualEncoder, type DualEncoderConfig } from './model.js';

/** A named pairing of a registered vision encoder and a registered text encoder. */
export interface AlignModelEntry {
  description: string;
  vision: string;
  text: string;
  embeddingDim: number;
  visionOverrides?: Record<string, unknown>;
  textOverrides?: Record<string, unknown>;
}

/** The named dual encoders (open_clip's model configs); any other pairing works through `createDualEncoder`. */
export const ALIGN_MODELS: Readonly<Record<string, AlignModelEntry>> = {
  'align-tiny': {
    description: 'resnet-tiny + bert-tiny cut to 1 layer of width 64, projected to d=64: the CPU reference model',
    vision: 'resnet-tiny',
    text: 'bert-tiny',
    embeddingDim: 64,
    visionOverrides: { embeddingDim: 64 },
    textOverrides: { numLayers: 1, embeddingDim: 64, intermediateSize: 256, numHeads: 2, maxPositions: 32, dropout: 0 },
  },
  'align-vit-micro': {
    description: 'vit-micro (32 px, patch 8) + bert-tiny, projected to d=64',
    vision: 'vit-micro',
    text: 'bert-tiny',
    embeddingDim: 64,
    visionOverrides: { imageSize: 32, patchSize: 8, embeddingDim: 64 },
    textOverrides: { numLayers: 1, embeddingDim: 64, intermediateSize: 256, numHeads: 2, maxPositions: 32, dropout: 0 },
  },
};

/** What `createDualEncoder` needs: two registered names, the shared size, per-tower overrides. */
export interface DualEncoderOptions {
  /** A registered vision encoder, e.g. `resnet-tiny`, `vit-micro`, or a plug-in's. */
  vision: string;
  /** A registered text encoder, e.g. `bert-tiny`. */
  text: string;
  /** Shared embedding size d after the projections. */
  embeddingDim: number;
  visionOverrides?: Record<string, unknown>;
  textOverrides?: Record<string, unknown>;
  /** Name stored in the config (default `<vision>+<text>`). */
  name?: string;
}

/**
 * A container with core's, vision's, text's and align's registrations, plus any extra modules
 * (a plug-in's encoders become usable as towers).
 */
export function alignContainer(...extra: ContainerModule[]): Container {
  const container = new Container();
  container.load(coreModule, visionModule, textModule, alignModule, ...extra);
  return container;
}

/** The registration named `name` for `modality`; an unknown name lists the known ones. */
export function findRegistration(container: Container, name: string, modality: Modality): EncoderRegistration {
  const all = container.isBound(ENCODER_REGISTRATION)
    ? container.getAll<EncoderRegistration>(ENCODER_REGISTRATION)
    : [];
  const found = all.find((r) => r.name === name && r.modality === modality);
  if (found !== undefined) return found;
  throw new MrlError(
    'unknown-name',
    `unknown ${modality} encoder '${name}'.`,
    `Known ${modality} encoders: ${
      all
        .filter((r) => r.modality === modality)
        .map((r) => r.name)
        .join(', ') || 'none'
    }.`,
  );
}

/**
 * Builds a dual encoder from two registered towers, resolved through the DI container.
 *
 * @example
 * ```ts
 * const dual = createDualEncoder({ vision: 'resnet-tiny', text: 'bert-tiny', embeddingDim: 64, textOverrides: { vocabSize: 2000 } }, createRandom(0));
 * ```
 */
export function createDualEncoder(
  options: DualEncoderOptions,
  random: Random,
  container: Container = alignContainer(),
): DualEncoder {
  const visionReg = findRegistration(container, options.vision, 'vision');
  const textReg = findRegistration(container, options.text, 'text');
  const visionConfig = { ...visionReg.defaults, ...options.visionOverrides } as EncoderConfig;
  const textConfig = { ...textReg.defaults, ...options.textOverrides } as EncoderConfig;
  const vision = visionReg.create(visionConfig, random) as Encoder<tf.Tensor>;
  const text = textReg.create(textConfig, random) as Encoder<TokenBatch>;
  const config: DualEncoderConfig = {
    architecture: options.name ?? `${options.vision}+${options.text}`,
    embeddingDim: options.embeddingDim,
    vision: vision.config,
    text: text.config,
  };
  return new DualEncoder(config, vision, text, random);
}

/** Options of a named dual encoder with the caller's changes (e.g. the tokenizer's vocabSize). */
export function alignModelOptions(name: string, changes: Partial<DualEncoderOptions> = {}): DualEncoderOptions {
  const entry = ALIGN_MODELS[name];
  if (entry === undefined) {
    throw new MrlError(
      'unknown-name',
      `unknown align model '${name}'.`,
      `Known align models: ${Object.keys(ALIGN_MODELS).join(', ')}.`,
    );
  }
  return {
    name,
    vision: changes.vision ?? entry.vision,
    text: changes.text ?? entry.text,
    embeddingDim: changes.embeddingDim ?? entry.embeddingDim,
    visionOverrides: { ...entry.visionOverrides, ...changes.visionOverrides },
    textOverrides: { ...entry.textOverrides, ...changes.textOverrides },
  };
}

/**
 * Registers the named dual encoders (`align-tiny`, `align-vit-micro`) as `align` encoders. Their
 * `create` resolves the towers from a container with the vision and text modules.
 */
export const alignModule = new ContainerModule((options) => {
  for (const [name, entry] of Object.entries(ALIGN_MODELS)) {
    options.bind<EncoderRegistration>(ENCODER_REGISTRATION).toConstantValue({
      name,
      modality: 'align',
      description: entry.description,
      defaults: { architecture: name, embeddingDim: entry.embeddingDim, vision: entry.vision, text: entry.text },
      create: (config, random) => {
        const towers = new Container();
        towers.load(coreModule, visionModule, textModule);
        const { visionOverrides, textOverrides } = config as {
          visionOverrides?: Record<string, unknown>;
          textOverrides?: Record<string, unknown>;
        };
        const changes: Partial<DualEncoderOptions> = { embeddingDim: config.embeddingDim };
        if (typeof config.vision === 'string') changes.vision = config.vision;
        if (typeof config.text === 'string') changes.text = config.text;
        if (visionOverrides !== undefined) changes.visionOverrides = visionOverrides;
        if (textOverrides !== undefined) changes.textOverrides = textOverrides;
        return createDualEncoder(alignModelOptions(name, changes), random, towers) as Encoder<unknown>;
      },
    });
  }
});

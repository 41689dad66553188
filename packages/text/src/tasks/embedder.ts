import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createRandom,
  MrlError,
  trainerOptions as coreTrainerOptions,
  type Encoder,
  type RunContext,
  type TrainerOptions,
} from '@mrl/core';
import { OnnxBackboneEncoder } from '../backbone.js';
import { BertEncoder, bertConfig, bertLayerDecay, type TokenBatch } from '../bert.js';
import { exportTextModel, type DimRow } from '../export.js';
import type { TextFitOptions } from '../fit.js';
import { loadHfBert } from '../hf-bert.js';
import { bertBaseUncasedVocab, wordPieceTokenizerFiles, writeTokenizerFiles } from '../tokenizer/tokenizer-json.js';
import { TextTokenizer, type EncodedBatch } from '../tokenizer/tokenizer.js';
import { trainWordPiece } from '../tokenizer/wordpiece-trainer.js';
import { ProjectedEncoder } from './common.js';

export async function resolveTokenizer(
  options: TextFitOptions,
  context: RunContext,
  texts: () => Promise<string[]>,
): Promise<TextTokenizer> {
  if (options.tokenizer !== undefined) return TextTokenizer.load(options.tokenizer);
  const dir = join(context.runDir, 'tokenizer');
  // A resumed run keeps the vocabulary its checkpoints were trained with: training it again
  // costs time, and if the training texts changed it would give other ids to the same rows
  // of the embedding table.
  if ((context.resume || context.fromCheckpoint !== undefined) && existsSync(join(dir, 'tokenizer.json'))) {
    const tokenizer = await TextTokenizer.load(dir);
    context.log(`resuming with the run's own tokenizer (${tokenizer.vocabSize} pieces) ${dir}`);
    return tokenizer;
  }
  if (options.vocabSize !== undefined) {
    const t0 = performance.now();
    const vocab = await trainWordPiece(await texts(), { vocabSize: options.vocabSize });
    await writeTokenizerFiles(dir, wordPieceTokenizerFiles(vocab));
    context.log(
      `trained a WordPiece vocabulary of ${vocab.length} pieces in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${dir}`,
    );
  } else {
    await writeTokenizerFiles(dir, wordPieceTokenizerFiles(await bertBaseUncasedVocab()));
    context.log(`tokenizer: bert-base-uncased vocabulary (30,522) -> ${dir}`);
  }
  return TextTokenizer.load(dir);
}

export function tokenBatch(encoded: EncodedBatch): TokenBatch {
  const shape: [number, number] = [encoded.batch, encoded.length];
  return {
    ids: tf.tensor2d(encoded.ids, shape, 'int32'),
    attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32'),
  };
}

export function disposeTokens(batch: TokenBatch): void {
  tf.dispose([batch.ids, batch.attentionMask]);
}

/**
 * The Trainer's `lrScales` for `layerDecay`: the encoder's per-variable scales, keyed by the
 * model's names for the same variables.
 */
export function layerDecayScales(
  options: TextFitOptions,
  encoder: Encoder<unknown>,
  model: { variables(): Map<string, tf.Variable> },
): Pick<TrainerOptions, 'lrScales'> {
  if (options.layerDecay === undefined || options.layerDecay === 1 || !(encoder instanceof BertEncoder)) return {};
  const scales = bertLayerDecay(encoder, options.layerDecay);
  const byVariable = new Map([...encoder.variables()].map(([name, v]) => [v, scales.get(name)!]));
  const lrScales = new Map<string, number>();
  for (const [name, v] of model.variables()) {
    const scale = byVariable.get(v);
    if (scale !== undefined) lrScales.set(name, scale);
  }
  return { lrScales };
}

/**
 * The Trainer's options of one model of a text run: AdamW (lr 1e-3, weight decay 0.01), clip 1,
 * one epoch of batch 32 unless set. The Matryoshka model keeps `checkpoints/`; each baseline
 * model of a run has its own folder `checkpoints/<label>`.
 */
export function trainerOptions(options: TextFitOptions, context: RunContext, label: string): TrainerOptions {
  return coreTrainerOptions(
    options,
    { epochs: 1, batchSize: 32, lr: 1e-3, weightDecay: 0.01, warmupSteps: 0, clipNorm: 1, checkpointEvery: 1_000_000 },
    context,
    label,
    label === 'mrl' ? join(context.runDir, 'checkpoints') : join(context.runDir, 'checkpoints', label),
  );
}

/** The BERT to train and its tokenizer: a pretrained folder's (`init`) or a fresh one. */
export async function resolveEncoder(
  options: TextFitOptions,
  context: RunContext,
  texts: () => Promise<string[]>,
): Promise<{ encoder: BertEncoder; tokenizer: TextTokenizer }> {
  if (options.init === undefined) {
    const tokenizer = await resolveTokenizer(options, context, texts);
    return { encoder: buildEncoder(options, tokenizer, context), tokenizer };
  }
  const loaded = await loadHfBert(options.init, {
    pooling: options.modelOverrides?.pooling ?? 'mean',
    ...(options.modelOverrides?.dropout === undefined ? {} : { dropout: options.modelOverrides.dropout }),
    random: createRandom(context.seed, 10),
  });
  const c = loaded.encoder.config;
  const maxLength = options.maxLength ?? 32;
  if (maxLength > c.maxPositions) {
    loaded.encoder.dispose();
    throw new MrlError(
      'invalid-config',
      `maxLength ${maxLength} exceeds ${options.init}'s max_position_embeddings ${c.maxPositions}.`,
      'Lower maxLength.',
    );
  }
  const params = [...loaded.encoder.variables().values()].reduce((s, v) => s + v.size, 0);
  context.log(
    `encoder: pretrained ${options.init} d=${c.embeddingDim} layers=${c.numLayers} heads=${c.numHeads} vocab=${c.vocabSize} gelu=${c.activation} pooling=${c.pooling} (${(params / 1e6).toFixed(2)}M parameters, all trained)`,
  );
  return loaded;
}

/**
 * Writes the trained BERT to `<runDir>/model` as a Hugging Face folder (config.json with the
 * nesting dims, model.safetensors, tokenizer, onnx/model.onnx, model card), which `init`,
 * `loadHfBert` and `mrl-cli export` read.
 */
export async function saveTextModel(
  encoder: BertEncoder,
  tokenizer: TextTokenizer,
  dims: number[],
  table: DimRow[],
  options: TextFitOptions,
  context: RunContext,
): Promise<void> {
  const dir = join(context.runDir, 'model');
  await exportTextModel(encoder, dir, {
    format: 'hf',
    dims,
    tokenizerDir: tokenizer.dir,
    maxLength: options.maxLength ?? 32,
    table,
    name: `mrl text ${options.task}`,
  });
  context.log(`model (Hugging Face layout, ONNX included) -> ${dir}`);
}

export function buildEncoder(options: TextFitOptions, tokenizer: TextTokenizer, context: RunContext): BertEncoder {
  const config = bertConfig(options.model ?? 'bert-tiny', {
    vocabSize: tokenizer.vocabSize,
    ...options.modelOverrides,
  });
  const maxLength = options.maxLength ?? 32;
  if (maxLength > config.maxPositions) {
    throw new MrlError(
      'invalid-config',
      `maxLength ${maxLength} exceeds the model's maxPositions ${config.maxPositions}.`,
      'Lower maxLength or raise maxPositions.',
    );
  }
  const encoder = new BertEncoder(config, createRandom(context.seed, 10));
  const params = [...encoder.variables().values()].reduce((s, v) => s + v.size, 0);
  context.log(
    `encoder: ${options.model ?? 'bert-tiny'} d=${config.embeddingDim} layers=${config.numLayers} heads=${config.numHeads} vocab=${config.vocabSize} (${(params / 1e6).toFixed(2)}M parameters)`,
  );
  return encoder;
}

/**
 * What classify, retrieve and pairs train: a BERT built here (texts -> padded token ids) or a
 * frozen local ONNX backbone with a trainable projection (texts -> cached backbone features).
 */
export interface TextEmbedder<Input> {
  encoder: Encoder<Input>;
  /** Model input for a batch of texts (tokenised, or backbone features prefetched). */
  input(texts: string[]): Input | Promise<Input>;
  release(input: Input): void;
  /** The tokenizer of a BERT embedder (shared by the models of one run). */
  tokenizer?: TextTokenizer;
}

/**
 * Builds the run's encoder. `outputDim` (an FF baseline) puts a linear layer to that size on the
 * BERT (or sizes the backbone's projection); `tokenizer` reuses the run's tokenizer.
 */
export async function buildEmbedder(
  options: TextFitOptions,
  context: RunContext,
  trainTexts: () => string[],
  spec: { outputDim?: number; tokenizer?: TextTokenizer } = {},
): Promise<TextEmbedder<TokenBatch> | TextEmbedder<string[]>> {
  const maxLength = options.maxLength ?? 32;
  if (options.backbone !== undefined) {
    const encoder = await OnnxBackboneEncoder.load({
      modelDir: options.backbone,
      embeddingDim: spec.outputDim ?? options.projectionDim ?? 128,
      ...(options.backbonePooling === undefined ? {} : { pooling: options.backbonePooling }),
      random: createRandom(context.seed, 12),
    });
    context.log(
      `encoder: frozen ONNX backbone ${encoder.modelDir} (${encoder.pooling} pooling, ${encoder.backboneDim} features) + trainable projection to d=${encoder.embeddingDim}`,
    );
    return {
      encoder,
      input: async (texts) => {
        await encoder.prefetch(texts);
        return texts;
      },
      release: () => undefined,
    };
  }
  // Baselines of a run share the first model's tokenizer; a pretrained --init is loaded for each.
  const resolved =
    spec.tokenizer !== undefined && options.init === undefined
      ? { encoder: buildEncoder(options, spec.tokenizer, context), tokenizer: spec.tokenizer }
      : await resolveEncoder(options, context, async () => trainTexts());
  const { tokenizer } = resolved;
  const encoder =
    spec.outputDim === undefined
      ? resolved.encoder
      : new ProjectedEncoder(resolved.encoder, spec.outputDim, createRandom(context.seed, 13));
  return {
    encoder,
    tokenizer,
    input: (texts) => tokenBatch(tokenizer.encodeBatch(texts, maxLength)),
    release: disposeTokens,
  };
}

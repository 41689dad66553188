import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createRandom,
  MrlError,
  nextSeed,
  type Encoder,
  type EncoderConfig,
  type Random,
  type RunContext,
  type TrainerOptions,
  type VariableMap,
} from '@mrl/core';
import { OnnxBackboneEncoder } from '../backbone.js';
import { BertEncoder, bertConfig, type TokenBatch } from '../bert.js';
import type { TextFitOptions } from '../fit.js';
import { bertBaseUncasedVocab, wordPieceTokenizerFiles, writeTokenizerFiles } from '../tokenizer/tokenizer-json.js';
import { TextTokenizer, type EncodedBatch } from '../tokenizer/tokenizer.js';
import { trainWordPiece } from '../tokenizer/wordpiece-trainer.js';

/* Pieces every text task shares: tokenizer, encoder, trainer options. */

export async function resolveTokenizer(
  options: TextFitOptions,
  context: RunContext,
  texts: () => Promise<string[]>,
): Promise<TextTokenizer> {
  if (options.tokenizer !== undefined) return TextTokenizer.load(options.tokenizer);
  const dir = join(context.runDir, 'tokenizer');
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

export function trainerOptions(options: TextFitOptions, context: RunContext, label: string): TrainerOptions {
  return {
    ...(options.steps === undefined ? { epochs: options.epochs ?? 1 } : { steps: options.steps }),
    batchSize: options.batchSize ?? 32,
    seed: context.seed,
    optimizer: { type: 'adamw', lr: options.lr ?? 1e-3, weightDecay: 0.01 } as TrainerOptions['optimizer'],
    warmupSteps: options.warmupSteps ?? 0,
    ...(options.clipNorm === undefined ? { clipNorm: 1 } : { clipNorm: options.clipNorm }),
    // The Matryoshka model keeps `checkpoints/`; each baseline model of a run has its own folder.
    checkpoint: {
      dir: label === 'mrl' ? join(context.runDir, 'checkpoints') : join(context.runDir, 'checkpoints', label),
      every: options.checkpointEvery ?? 1_000_000,
    },
    resume: context.resume,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event) => context.onEvent?.(event, label),
  };
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
 * A fixed-size (FF) baseline's encoder: the BERT's pooled d-dim state through a trainable linear
 * layer to m dims, so the model is trained for m dims alone (Kusupati et al. 2022, "FF").
 */
export class ProjectedEncoder<Input> implements Encoder<Input> {
  readonly config: EncoderConfig;
  readonly weight: tf.Variable; // [d, m]
  readonly bias: tf.Variable; // [m]

  constructor(
    readonly inner: Encoder<Input>,
    readonly embeddingDim: number,
    random: Random,
  ) {
    this.config = { ...inner.config, architecture: `${inner.config.architecture}+projection`, embeddingDim };
    const limit = Math.sqrt(6 / (inner.embeddingDim + embeddingDim)); // Glorot-uniform
    this.weight = tf.tidy(() =>
      tf.variable(tf.randomUniform([inner.embeddingDim, embeddingDim], -limit, limit, 'float32', nextSeed(random))),
    );
    this.bias = tf.tidy(() => tf.variable(tf.zeros([embeddingDim])));
  }

  encode(input: Input, training: boolean): tf.Tensor2D {
    return tf.tidy(
      () => tf.add(tf.matMul(this.inner.encode(input, training), this.weight as tf.Tensor2D), this.bias) as tf.Tensor2D,
    );
  }

  variables(): VariableMap {
    return new Map([
      ...[...this.inner.variables()].map(([k, v]) => [`inner/${k}`, v] as const),
      ['projection/w', this.weight],
      ['projection/b', this.bias],
    ]);
  }

  dispose(): void {
    this.inner.dispose();
    tf.dispose([this.weight, this.bias]);
  }
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
  const tokenizer = spec.tokenizer ?? (await resolveTokenizer(options, context, async () => trainTexts()));
  const bert = buildEncoder(options, tokenizer, context);
  const encoder =
    spec.outputDim === undefined ? bert : new ProjectedEncoder(bert, spec.outputDim, createRandom(context.seed, 13));
  return {
    encoder,
    input: (texts) => tokenBatch(tokenizer.encodeBatch(texts, maxLength)),
    release: disposeTokens,
    tokenizer,
  };
}

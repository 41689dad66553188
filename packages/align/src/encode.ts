import { join } from 'node:path';
import {
  checkPrecision,
  embedDataset,
  encodeEmbeddings,
  MrlError,
  type EncodedEmbeddings,
  type Encoder,
  type EncodeOptions,
} from '@mrl/core';
import type { TokenBatch } from '@mrl/text';
import { TextTokenizer } from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import { rasterise, type PixelSet } from './data.js';
import type { DualEncoder } from './model.js';
import { ALIGN_TOKENIZER_DIR, loadAlignModel } from './save.js';
import { imageTensor, tokenTensor } from './tensors.js';

/** A saved dual encoder ready to embed: both towers, the caption tokenizer and the run's input settings. */
export interface LoadedAlignModel {
  encoder: DualEncoder;
  tokenizer: TextTokenizer;
  dims: number[];
  imageSize: number;
  maxLength: number;
  dispose(): void;
}

/** Loads `<runDir>/model` (weights, config, tokenizer) for {@link encodeImages} and {@link encodeTexts}. */
export async function loadAlignRun(runDir: string): Promise<LoadedAlignModel> {
  const dir = join(runDir, 'model');
  const { encoder, dims, imageSize, maxLength } = await loadAlignModel(dir);
  const tokenizer = await TextTokenizer.load(join(dir, ALIGN_TOKENIZER_DIR));
  return { encoder, tokenizer, dims, imageSize, maxLength, dispose: () => encoder.dispose() };
}

/** One tower of a dual encoder as an `Encoder` for `embedDataset` (eval mode, intermediate tensors freed). */
function tower<Input>(encoder: DualEncoder, run: (input: Input) => tf.Tensor2D): Encoder<Input> {
  return {
    config: encoder.config,
    embeddingDim: encoder.embeddingDim,
    encode: (input) => tf.tidy(() => run(input)),
    variables: () => new Map(),
    dispose: () => undefined,
  };
}

/** Image files as the run's vision tower saw its training images: `imageSize` square RGB, letterboxed on white. */
export async function readImages(paths: readonly string[], size: number): Promise<PixelSet> {
  const pixels = new Uint8Array(paths.length * size * size * 3);
  for (const [i, path] of paths.entries()) pixels.set(await rasterise(path, size), i * size * size * 3);
  return { pixels, count: paths.length, size, failed: [] };
}

/**
 * Embeds images with the image tower of a trained align model: the first `dim` values,
 * renormalised by core's `truncateAndNormalize`, at `precision` (core's `encodeEmbeddings`).
 *
 * @example
 * ```ts
 * const model = await loadAlignRun('runs/align');
 * const out = await encodeImages(model, await readImages(['cat.png'], model.imageSize), { dim: 16 });
 * ```
 */
export async function encodeImages(
  model: LoadedAlignModel,
  images: PixelSet,
  options: EncodeOptions = {},
): Promise<EncodedEmbeddings> {
  checkPrecision(options.precision ?? 'float32');
  if (images.size !== model.imageSize) {
    throw new MrlError(
      'invalid-argument',
      `the images are ${images.size}x${images.size} but the model was trained on ${model.imageSize}x${model.imageSize}.`,
      `Read them with readImages(paths, ${model.imageSize}).`,
    );
  }
  const full = await embedDataset(
    tower(model.encoder, (x: tf.Tensor4D) => model.encoder.encodeImages(x, false)),
    images.count,
    (idx) => imageTensor(images, idx),
    { batchSize: options.batchSize ?? 128 },
  );
  return encodeEmbeddings(full, options, 'the image embeddings');
}

/** Embeds texts with the text tower of a trained align model (captions cut to the run's `maxLength` tokens). */
export async function encodeTexts(
  model: LoadedAlignModel,
  texts: readonly string[],
  options: EncodeOptions = {},
): Promise<EncodedEmbeddings> {
  checkPrecision(options.precision ?? 'float32');
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new MrlError('invalid-argument', `text ${i} is a ${typeof t}, not a string.`);
  });
  const ids = texts.map((t) => model.tokenizer.encode(t, false).slice(0, model.maxLength - 2));
  const full = await embedDataset(
    tower(model.encoder, (batch: TokenBatch) => model.encoder.encodeTexts(batch, false)),
    texts.length,
    (idx) =>
      tokenTensor(
        [...idx].map((i) => ids[i]!),
        model.maxLength,
        model.tokenizer.special,
      ),
    { batchSize: options.batchSize ?? 128, dispose: (b) => tf.dispose([b.ids, b.attentionMask]) },
  );
  return encodeEmbeddings(full, options, 'the caption embeddings');
}

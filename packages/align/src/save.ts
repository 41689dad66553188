import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assignVariables,
  createRandom,
  MrlError,
  readSafetensors,
  writeFileAtomically,
  writeSafetensors,
  type Encoder,
} from '@mrl/core';
import { BertEncoder, type BertConfig, type TokenBatch } from '@mrl/text';
import { buildVisionEncoder } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import { DualEncoder, type DualEncoderConfig } from './model.js';

/** Files of a saved dual encoder: its config, every variable, and the caption tokenizer. */
export const ALIGN_CONFIG_FILE = 'config.json';
export const ALIGN_WEIGHTS_FILE = 'weights.safetensors';
export const ALIGN_TOKENIZER_DIR = 'tokenizer';

/** How the run made model inputs, so that `encode` makes new ones the same way. */
export interface AlignInputSettings {
  /** Side of the square RGB images (letterboxed on white) the vision tower was trained on. */
  image_size?: number;
  /** Tokens per caption, [CLS] and [SEP] included. */
  max_length?: number;
}

/**
 * Saves a dual encoder to `dir`: `config.json` (both towers' configs, d, the nesting dims),
 * `weights.safetensors` (every variable, batch-norm statistics included) and `tokenizer/` (a copy
 * of `tokenizerDir`), all written atomically. {@link loadAlignModel} reads it back.
 *
 * @example await saveAlignModel('runs/align/model', encoder, 'runs/align/tokenizer', [8, 16, 32, 64]);
 */
export async function saveAlignModel(
  dir: string,
  encoder: DualEncoder,
  tokenizerDir: string,
  dims: readonly number[],
  inputs: AlignInputSettings = {},
): Promise<void> {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of encoder.variables())
    tensors.set(name, { shape: [...v.shape], data: v.dataSync() as Float32Array });
  await writeSafetensors(join(dir, ALIGN_WEIGHTS_FILE), tensors, { 'mrl.nesting_dims': JSON.stringify(dims) });
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'vocab.txt'])
    await writeFileAtomically(join(dir, ALIGN_TOKENIZER_DIR, file), await readFile(join(tokenizerDir, file)));
  await writeFileAtomically(
    join(dir, ALIGN_CONFIG_FILE),
    `${JSON.stringify({ ...encoder.config, mrl: { nesting_dims: dims, ...inputs } }, null, 2)}\n`,
  );
}

/**
 * A dual encoder saved by {@link saveAlignModel}: the vision tower rebuilt from its config
 * (ResNet, ViT or MLP), the text tower as a `BertEncoder`, every variable restored. The caption
 * tokenizer is in `<dir>/tokenizer`.
 */
export async function loadAlignModel(
  dir: string,
): Promise<{ encoder: DualEncoder; dims: number[]; imageSize: number; maxLength: number }> {
  const configFile = join(dir, ALIGN_CONFIG_FILE);
  let config: DualEncoderConfig & { mrl?: { nesting_dims?: number[] } & AlignInputSettings };
  try {
    config = JSON.parse(await readFile(configFile, 'utf8')) as typeof config;
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `cannot read the saved dual encoder config ${configFile}: ${(cause as Error).message}.`,
      'Point at the model folder an align run wrote (<run-dir>/model).',
      { cause },
    );
  }
  if (config.text?.architecture !== 'bert') {
    throw new MrlError(
      'unsupported',
      `${configFile}: the text tower is '${String(config.text?.architecture)}'; loading supports BERT text towers.`,
    );
  }
  const random = createRandom(0);
  const vision = buildVisionEncoder(config.vision, random) as Encoder<tf.Tensor>;
  const text = new BertEncoder(config.text as BertConfig, random) as Encoder<TokenBatch>;
  const encoder = new DualEncoder(
    { architecture: config.architecture, embeddingDim: config.embeddingDim, vision: config.vision, text: config.text },
    vision,
    text,
    random,
  );
  const weightsFile = join(dir, ALIGN_WEIGHTS_FILE);
  const { tensors } = await readSafetensors(weightsFile);
  assignVariables(encoder.variables(), tensors, {
    source: weightsFile,
    fix: 'The weights do not belong to config.json beside them; train the run again.',
  });
  // Models saved before the input settings were recorded used fitAlign's defaults.
  return {
    encoder,
    dims: config.mrl?.nesting_dims ?? [],
    imageSize: config.mrl?.image_size ?? 24,
    maxLength: config.mrl?.max_length ?? 24,
  };
}

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assignVariables,
  createRandom,
  listCheckpoints,
  MrlError,
  readSafetensors,
  resolveNesting,
  writeFileAtomically,
  type EncoderConfig,
} from '@mrl/core';
import { BertEncoder, type BertConfig } from '../bert.js';
import { loadHfBert } from '../hf-bert.js';
import { LabelMap, loadLabelMap } from '../data/labels.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';

/** Name of the model description in a run folder. */
export const TEXT_MODEL_FILE = 'model.json';
const FORMAT = 'mrl-text-model';

/** What a run folder's `model.json` records, so the trained encoder can be rebuilt for `encode`. */
export interface TextModelInfo {
  task: string;
  encoder: EncoderConfig;
  /** Tokens per text, [CLS] and [SEP] included. */
  maxLength: number;
  dims: readonly number[];
  /** The label map file in the run folder (classification runs). */
  labels?: string;
  /** The training data file. */
  data?: string;
}

/** Writes `<runDir>/model.json` atomically. */
export async function saveTextModelInfo(runDir: string, info: TextModelInfo): Promise<void> {
  await writeFileAtomically(join(runDir, TEXT_MODEL_FILE), `${JSON.stringify({ format: FORMAT, ...info }, null, 2)}\n`);
}

/** A trained text encoder with its tokenizer, ready for `encode`. */
export interface TextModel {
  encoder: BertEncoder;
  tokenizer: TextTokenizer;
  maxLength: number;
  dims: readonly number[];
  /** Class names in id order, for a classification run. */
  labels?: LabelMap;
  dispose(): void;
}

/**
 * Rebuilds the trained BERT of a text run folder (`model.json`, `tokenizer/`, the newest
 * checkpoint in `checkpoints/`) and its label map.
 *
 * @example
 * ```ts
 * const model = await loadTextModel('runs/reviews');
 * const z = await encode(model, ['great film'], { dim: 32 });
 * ```
 */
export async function loadTextModel(runDir: string): Promise<TextModel> {
  const path = join(runDir, TEXT_MODEL_FILE);
  // Runs on the built-in data (and fine-tunes) keep their model as a Hugging Face folder only.
  if (!existsSync(path) && existsSync(join(runDir, 'model', 'config.json'))) return loadRunModelFolder(runDir);
  let info: TextModelInfo & { format?: unknown };
  try {
    info = JSON.parse(await readFile(path, 'utf8')) as typeof info;
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MrlError(
      missing ? 'missing-file' : 'corrupt-file',
      missing ? `no ${TEXT_MODEL_FILE} in ${runDir}.` : `${path} is not JSON: ${(cause as Error).message}.`,
      'Point to the folder of a text classify or pairs run trained from a file (fitText with trainFile).',
      { cause },
    );
  }
  if (info.format !== FORMAT || info.encoder?.architecture !== 'bert') {
    throw new MrlError(
      'unsupported',
      `${path} does not describe a BERT trained by mrl (architecture '${String(info.encoder?.architecture)}').`,
      'Runs on a frozen ONNX backbone are not reloadable yet: embed with the backbone encoder in the same process.',
    );
  }
  const checkpoints = await listCheckpoints(join(runDir, 'checkpoints'));
  const newest = checkpoints[checkpoints.length - 1];
  if (newest === undefined) {
    throw new MrlError('missing-file', `no checkpoint in ${join(runDir, 'checkpoints')}.`, 'Train the run first.');
  }
  const tokenizer = await TextTokenizer.load(join(runDir, 'tokenizer'));
  const encoder = new BertEncoder(info.encoder as BertConfig, createRandom(0));
  const { tensors } = await readSafetensors(newest.path);
  assignVariables(encoder.variables(), tensors, {
    source: newest.path,
    prefix: 'param/encoder/',
    fix: `${path} and the checkpoint disagree: was the run folder reused for another model?`,
  });
  const labels = info.labels === undefined ? undefined : await loadLabelMap(join(runDir, info.labels));
  return {
    encoder,
    tokenizer,
    maxLength: info.maxLength,
    dims: info.dims,
    ...(labels === undefined ? {} : { labels }),
    dispose: () => encoder.dispose(),
  };
}

/** A text run's `model/` folder (Hugging Face layout, nesting dims in its config) as a TextModel. */
async function loadRunModelFolder(runDir: string): Promise<TextModel> {
  const dir = join(runDir, 'model');
  const { encoder, tokenizer, hfConfig } = await loadHfBert(dir, { random: createRandom(0) });
  const saved = (hfConfig as { mrl?: { nesting_dims?: unknown; max_length?: unknown } }).mrl;
  const d = encoder.embeddingDim;
  const dims =
    Array.isArray(saved?.nesting_dims) && saved.nesting_dims.every((m) => Number.isInteger(m) && m >= 1 && m <= d)
      ? (saved.nesting_dims as number[])
      : resolveNesting({ embeddingDim: d }).dims;
  const labelsPath = join(runDir, 'labels.json');
  const labels = existsSync(labelsPath) ? await loadLabelMap(labelsPath) : undefined;
  return {
    encoder,
    tokenizer,
    maxLength: typeof saved?.max_length === 'number' ? saved.max_length : 32,
    dims,
    ...(labels === undefined ? {} : { labels }),
    dispose: () => encoder.dispose(),
  };
}

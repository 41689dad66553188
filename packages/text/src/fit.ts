import {
  checkBaselines,
  initBackend,
  MrlError,
  type BackendName,
  type HeadKind,
  type RunContext,
  type RunReport,
  type TrainSettings,
} from '@mrl/core';
import type { BackbonePooling } from './backbone.js';
import type { BertConfig } from './bert.js';
import type { LongTextPolicy } from './data/source.js';
import type { TextBaseline } from './tasks/baselines.js';
import { fitClassifyFile } from './tasks/classify.js';
import { fitMlm } from './tasks/mlm.js';
import { fitPairsFile } from './tasks/pairs.js';
import { fitClassify, fitRetrieve } from './tasks/wordnet.js';

// Shared with the file tasks (tasks/classify.ts, tasks/pairs.ts) and encode.ts.
export {
  buildEmbedder,
  buildEncoder,
  disposeTokens,
  resolveTokenizer,
  tokenBatch,
  trainerOptions,
  type TextEmbedder,
} from './tasks/embedder.js';

export const TEXT_TASKS = ['mlm', 'classify', 'retrieve', 'pairs'] as const;
export type TextTask = (typeof TEXT_TASKS)[number];

/**
 * Options of `mrl-cli fit --modality text`. Every field but `task` has a default sized for a
 * CPU run of minutes.
 */
export interface TextFitOptions extends TrainSettings {
  /**
   * `mlm`: masked-LM pre-training; `classify`: texts -> classes (`trainFile`, or WordNet gloss ->
   * 45 lexicographer classes); `pairs` (or `retrieve` with a `trainFile`): anchor -> positive
   * contrastive training on the user's pairs / triplets; `retrieve`: WordNet example -> its gloss.
   */
  task: TextTask;
  /**
   * classify / pairs: the training file (`.jsonl`, `.csv`, `.tsv`). classify reads `textField`
   * and `labelField`; pairs reads `anchorField`, `positiveField` and, when present,
   * `negativeField` (a hard negative).
   */
  trainFile?: string;
  /** A test file with the same fields. Default: a deterministic hash split of `trainFile` by `testFraction`. */
  testFile?: string;
  /** Share of `trainFile` held out when there is no `testFile` (default 0.2). */
  testFraction?: number;
  /** classify: field of the text (default `text`). */
  textField?: string;
  /** classify: field of the class (default `label`); string labels map to ids saved in `<runDir>/labels.json`. */
  labelField?: string;
  /** pairs: field of the anchor / query (default `anchor`). */
  anchorField?: string;
  /** pairs: field of the positive (default `positive`). */
  positiveField?: string;
  /** pairs: field of the hard negative (default `negative` when the first record has one). */
  negativeField?: string;
  /**
   * pairs: score each test anchor against every text of this file (field `textField`, default
   * `text`) instead of the test positives and negatives; a candidate is relevant when its text is
   * the anchor's positive, so the file must hold every positive (e.g. WordNet's lexnames.jsonl,
   * all 117,659 glosses, for pairs.jsonl).
   */
  candidatesFile?: string;
  /** Characters kept of one text (default 20,000). */
  maxTextChars?: number;
  /** A text over `maxTextChars`: `truncate` (default, with a warning naming the line) or `error`. */
  longText?: LongTextPolicy;
  /**
   * classify / pairs from a file: baselines trained and scored in the same per-dim table
   * (default none): `ff` (a model per dim), `svd` (PCA of the model trained without MRL),
   * `rand` (truncation of the model trained without MRL), `untrained` (the Matryoshka model's
   * initial encoder, not trained: random features).
   */
  compare?: TextBaseline[];
  /**
   * classify from a file: `shared` (default; MRL-E, one head whose weight rows are sliced per
   * prefix) or `separate` (MRL, a linear head per nesting dim) for the Matryoshka model; baselines have one linear head.
   */
  head?: HeadKind;
  /** BERT config name (default `bert-tiny`) and field overrides (e.g. `{ numLayers: 1 }`). */
  model?: string;
  modelOverrides?: Partial<BertConfig>;
  /** Folder with a `tokenizer.json`. Default: train a WordPiece vocabulary when `vocabSize` is set, else bert-base-uncased. */
  tokenizer?: string;
  /** Train a WordPiece vocabulary of this size on the training texts (written to `<runDir>/tokenizer`). */
  vocabSize?: number;
  /** mlm: packaged corpora (default all of brown, sotu, moby-dick, nlp-corpus, wordnet), read in turn sentence by sentence. */
  corpora?: string[];
  /** mlm: extra `.txt` (one text a line), `.jsonl`, `.csv` or `.tsv` files (field `textField`, default `text`), checked as the classify files are. */
  textFiles?: string[];
  /** Training texts / examples used (`--train-limit`; mlm default 20,000 sentences; classify and retrieve default 20,000 synsets). */
  trainLimit?: number;
  /** Held-out texts / examples for the table (`--test-limit`; default 1,000). */
  testLimit?: number;
  /** retrieve: glosses in the searched database (held-out positives plus distractors; default 10,000; 0 = all 117,659). */
  databaseSize?: number;
  /**
   * mlm: fraction of tokens chosen for prediction in training (default 0.15, BERT's). Held-out
   * accuracy always uses 0.15. Wettig et al. (2023, "Should You Mask 15% in Masked Language
   * Modeling?") find 0.3-0.4 trains small budgets faster: more predictions per encoder pass.
   */
  maskProbability?: number;
  /** Tokens per sequence, [CLS] and [SEP] included (default 32). */
  maxLength?: number;
  steps?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  warmupSteps?: number;
  clipNorm?: number;
  /** Nesting dims (default powers of two from `minDim` = 8 up to d). */
  dims?: number[];
  minDim?: number;
  /** Tensor backend (default wasm). */
  backend?: BackendName;
  /** Folder with WordNet's data.noun etc. (default /usr/share/wordnet). */
  wordnetDir?: string;
  /** Checkpoint every this many steps (default: only at the end). */
  checkpointEvery?: number;
  /**
   * classify / retrieve: a local transformers.js model folder (`config.json`, `tokenizer.json`,
   * `onnx/model.onnx`) used as a frozen backbone; only a linear Matryoshka projection to
   * `projectionDim` (default 128) is trained on top. `model`, `tokenizer` and `vocabSize` are then unused.
   */
  backbone?: string;
  /**
   * A pretrained Hugging Face BERT folder (`config.json`, `model.safetensors`, `tokenizer.json`
   * or `vocab.txt`) to start from instead of random weights; every layer is fine-tuned. Its
   * config fixes the model size and tokenizer (`model`, `tokenizer` and `vocabSize` are unused);
   * `modelOverrides.pooling` (default `mean`) and `modelOverrides.dropout` still apply.
   */
  init?: string;
  /**
   * Layer-wise learning-rate decay (e.g. 0.8): each BERT block trains at `decay` times the rate
   * of the block above it, the embeddings below the first block (`bertLayerDecay`). Default 1 (off).
   */
  layerDecay?: number;
  /** Pooling of the backbone's token states: `mean` (default) or `cls`. */
  backbonePooling?: BackbonePooling;
  projectionDim?: number;
}

/**
 * Trains a text encoder with a Matryoshka loss and reports per-dim quality: masked-token
 * accuracy (`mlm`), gloss-class top-1 (`classify`) or example -> gloss recall@10 (`retrieve`).
 *
 * @example
 * ```ts
 * const report = await fitText({ task: 'mlm', vocabSize: 4096, steps: 300 }, { runDir: 'runs/mlm', seed: 0, resume: false, log: console.log });
 * console.log(report.table);
 * ```
 */
export async function fitText(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  if (!(TEXT_TASKS as readonly string[]).includes(options.task)) {
    throw new MrlError(
      'invalid-config',
      `unknown text task '${String(options.task)}'.`,
      `Choose one of: ${TEXT_TASKS.join(', ')}.`,
    );
  }
  checkBaselines(options.compare ?? []);
  if (options.task === 'pairs' && options.trainFile === undefined) {
    throw new MrlError(
      'invalid-config',
      'the pairs task needs a trainFile.',
      'Give a JSONL/CSV/TSV file of anchor and positive texts (and optionally a hard negative).',
    );
  }
  const backend = await initBackend(options.backend ?? 'wasm');
  // The caller usually started it already (the CLI prints which); this only makes sure one runs.
  void backend;
  switch (options.task) {
    case 'mlm':
      return fitMlm(options, context);
    case 'classify':
      return options.trainFile === undefined ? fitClassify(options, context) : fitClassifyFile(options, context);
    case 'retrieve':
      return options.trainFile === undefined ? fitRetrieve(options, context) : fitPairsFile(options, context);
    case 'pairs':
      return fitPairsFile(options, context);
  }
}

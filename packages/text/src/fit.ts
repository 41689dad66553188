import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  embedDataset,
  formatTable,
  headTop1,
  majorityClass,
  initBackend,
  MatryoshkaLoss,
  MatryoshkaModel,
  MrlError,
  percent,
  permutation,
  retrievalMetrics,
  SharedHead,
  Trainer,
  type RunContext,
  type RunReport,
  type RunTable,
  type SupervisedBatch,
  type ClassTarget,
  type TrainerOptions,
  type Encoder,
  type BackendName,
  type HeadKind,
} from '@mrl/core';
import { OnnxBackboneEncoder, type BackbonePooling } from './backbone.js';
import { BertEncoder, bertConfig, bertLayerDecay, type BertConfig, type TokenBatch } from './bert.js';
import { InBatchContrastiveObjective, PairModel, type PairBatch } from './contrastive.js';
import { packagedCorpus, PACKAGED_CORPORA } from './corpora.js';
import { maskTokens, mlmAccuracy, mlmBatch, MlmModel, TiedMlmObjective, type MlmBatch } from './mlm.js';
import { exportTextModel, type DimRow } from './export.js';
import { loadHfBert } from './hf-bert.js';
import { bertBaseUncasedVocab, wordPieceTokenizerFiles, writeTokenizerFiles } from './tokenizer/tokenizer-json.js';
import { padRows, TextTokenizer, type EncodedBatch } from './tokenizer/tokenizer.js';
import { trainWordPiece } from './tokenizer/wordpiece-trainer.js';
import { readWordNet, WORDNET_LEXNAMES, type Synset } from './wordnet.js';
import { readRecords } from './data/records.js';
import { textOf, type LongTextPolicy } from './data/source.js';
import { TEXT_BASELINES, type TextBaseline } from './tasks/baselines.js';
import { fitClassifyFile } from './tasks/classify.js';
import { ProjectedEncoder } from './tasks/common.js';
import { fitPairsFile } from './tasks/pairs.js';

export const TEXT_TASKS = ['mlm', 'classify', 'retrieve', 'pairs'] as const;
export type TextTask = (typeof TEXT_TASKS)[number];

/**
 * Options of `mrl-cli fit --modality text`. Every field but `task` has a default sized for a
 * CPU run of minutes.
 */
export interface TextFitOptions {
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
  /** Characters kept of one text (default 20,000). */
  maxTextChars?: number;
  /** A text over `maxTextChars`: `truncate` (default, with a warning naming the line) or `error`. */
  longText?: LongTextPolicy;
  /**
   * classify / pairs from a file: baselines trained and scored in the same per-dim table
   * (default none): `ff` (a model per dim), `svd` (PCA of the model trained without MRL),
   * `rand` (truncation of the model trained without MRL).
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
  /** Training texts / examples used (mlm default 20,000 sentences; classify and retrieve default 20,000 synsets). */
  maxExamples?: number;
  /** Held-out texts / examples for the table (default 1,000). */
  evalExamples?: number;
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

/** Yields from several streams in turn, one item each, until all are exhausted. */
async function* interleave<T>(streams: AsyncIterator<T>[]): AsyncGenerator<T> {
  const live = [...streams];
  while (live.length > 0) {
    for (let i = 0; i < live.length; i++) {
      const next = await live[i]!.next();
      if (next.done === true) {
        live.splice(i, 1);
        i -= 1;
      } else yield next.value;
    }
  }
}

/** The texts of one user file for MLM: any record format, UTF-8 and field checked, the line named on error. */
async function* fileTexts(path: string, options: TextFitOptions): AsyncGenerator<string> {
  const field = options.textField ?? 'text';
  for await (const { fields, line } of readRecords(path)) {
    yield textOf(
      fields,
      field,
      { path, line },
      {
        ...(options.maxTextChars === undefined ? {} : { maxTextChars: options.maxTextChars }),
        ...(options.longText === undefined ? {} : { longText: options.longText }),
      },
    );
  }
}

async function takeTexts(options: TextFitOptions, count: number): Promise<string[]> {
  const corpora = options.corpora ?? [...PACKAGED_CORPORA];
  const streams: AsyncIterator<string>[] = corpora.map((c) => packagedCorpus([c], options.wordnetDir));
  for (const file of options.textFiles ?? []) streams.push(fileTexts(file, options));
  const out: string[] = [];
  for await (const text of interleave(streams)) {
    if (text.split(' ').length < 5) continue;
    out.push(text);
    if (out.length >= count) break;
  }
  return out;
}

async function resolveTokenizer(
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

function tokenBatch(encoded: EncodedBatch): TokenBatch {
  const shape: [number, number] = [encoded.batch, encoded.length];
  return {
    ids: tf.tensor2d(encoded.ids, shape, 'int32'),
    attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32'),
  };
}

function disposeTokens(batch: TokenBatch): void {
  tf.dispose([batch.ids, batch.attentionMask]);
}

/**
 * The Trainer's `lrScales` for `layerDecay`: the encoder's per-variable scales, keyed by the
 * model's names for the same variables.
 */
function layerDecayScales(
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

function trainerOptions(options: TextFitOptions, context: RunContext, label: string): TrainerOptions {
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
      ...(context.keepCheckpoints === undefined ? {} : { keep: context.keepCheckpoints }),
    },
    resume: context.resume,
    ...(context.fromCheckpoint === undefined ? {} : { fromCheckpoint: context.fromCheckpoint }),
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event) => context.onEvent?.(event, label),
  };
}

/** The BERT to train and its tokenizer: a pretrained folder's (`init`) or a fresh one. */
async function resolveEncoder(
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
async function saveTextModel(
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

function buildEncoder(options: TextFitOptions, tokenizer: TextTokenizer, context: RunContext): BertEncoder {
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
  for (const name of options.compare ?? []) {
    if (!(TEXT_BASELINES as readonly string[]).includes(name)) {
      throw new MrlError(
        'invalid-config',
        `unknown baseline '${String(name)}' in compare.`,
        `Choose from: ${TEXT_BASELINES.join(', ')}.`,
      );
    }
  }
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

async function fitMlm(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const maxLength = options.maxLength ?? 32;
  const trainCount = options.maxExamples ?? 20_000;
  const evalCount = options.evalExamples ?? 1_000;
  const t0 = performance.now();
  const texts = await takeTexts(options, trainCount + evalCount);
  if (texts.length < 2)
    throw new MrlError('invalid-argument', `the corpora gave only ${texts.length} usable sentences.`);
  const evalTexts = texts.slice(0, Math.min(evalCount, Math.floor(texts.length / 10)));
  const trainTexts = texts.slice(evalTexts.length);
  context.log(
    `corpus: ${trainTexts.length} training and ${evalTexts.length} held-out sentences in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const { encoder, tokenizer } = await resolveEncoder(options, context, async () => trainTexts);
  const encode = (t: string): Int32Array => Int32Array.from(tokenizer.encode(t, false).slice(0, maxLength - 2));
  const trainIds = trainTexts.map(encode);
  const evalIds = evalTexts.map(encode);
  const objective = new TiedMlmObjective(encoder.tokenEmbedding);
  const matryoshka = new MatryoshkaLoss(objective, {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new MlmModel(encoder, matryoshka);
  let draw = 0;
  const data = {
    size: trainIds.length,
    batch: (indices: Int32Array): MlmBatch => {
      const encoded = padRows(
        [...indices].map((i) => [...trainIds[i]!]),
        maxLength,
        tokenizer.special,
      );
      draw += 1;
      const masking = options.maskProbability === undefined ? {} : { probability: options.maskProbability };
      return mlmBatch(
        encoded,
        maskTokens(encoded, tokenizer.special, tokenizer.vocabSize, createRandom(context.seed, 3, draw), masking),
      );
    },
  };
  const trainer = new Trainer(model, data, {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  });
  const fit = await trainer.fit();
  // Held-out sentences with a fixed masking, so every dim is scored on the same tokens.
  const evalBatches: MlmBatch[] = [];
  // Every chosen token becomes [MASK]: with BERT's 10% kept tokens in the score, an untrained tied
  // model already gets ~10% by copying its input, which says nothing about context.
  const random = createRandom(context.seed, 4);
  for (let start = 0; start < evalIds.length; start += 64) {
    const encoded = padRows(
      evalIds.slice(start, start + 64).map((r) => [...r]),
      maxLength,
      tokenizer.special,
    );
    evalBatches.push(
      mlmBatch(
        encoded,
        maskTokens(encoded, tokenizer.special, tokenizer.vocabSize, random, { maskFraction: 1, randomFraction: 0 }),
      ),
    );
  }
  const dims = [...matryoshka.dims];
  const accuracy = await mlmAccuracy(encoder, objective, evalBatches, dims);
  const masked = evalBatches.reduce((s, b) => s + b.target.labels.size, 0);
  // Context-free reference: always predict the most frequent training token.
  const counts = new Map<number, number>();
  for (const row of trainIds) for (const id of row) counts.set(id, (counts.get(id) ?? 0) + 1);
  const top = [...counts].reduce((a, b) => (b[1] > a[1] ? b : a), [-1, 0])[0];
  let topHits = 0;
  for (const b of evalBatches) topHits += [...(await b.target.labels.data())].filter((id) => id === top).length;
  const unigram = topHits / Math.max(1, masked);
  context.log(
    `most-frequent-token baseline (always '${tokenizer.decode([top])}'): ${percent(unigram)}% of the held-out masked tokens`,
  );
  evalBatches.forEach((b) => b.dispose());
  const full = accuracy[accuracy.length - 1]!;
  const rows = dims.map((m, j) => ({
    m,
    acc: accuracy[j]!,
    rel: full > 0 ? accuracy[j]! / full : 0,
    loss: fit.lastParts[`loss/${m}`],
  }));
  const table = formatTable(rows, [
    { header: 'dim', value: (r) => String(r.m) },
    { header: 'masked-token acc %', value: (r) => percent(r.acc) },
    { header: 'vs full %', value: (r) => percent(r.rel) },
    { header: 'train loss', value: (r) => r.loss, digits: 3 },
  ]);
  const runTable: RunTable = {
    data: `packaged corpora (${(options.corpora ?? [...PACKAGED_CORPORA]).join(', ')}${(options.textFiles ?? []).length > 0 ? ' + text files' : ''})`,
    model: options.model ?? 'bert-tiny',
    task: `mlm, top-1 on ${masked} held-out tokens replaced by [MASK] after ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [{ key: 'top1', header: 'masked-token acc %', kind: 'percent' }],
    series: [{ key: 'mrl', label: 'MRL', rows: dims.map((dim, j) => ({ dim, values: { top1: accuracy[j]! } })) }],
    references: [{ label: `most frequent token, always '${tokenizer.decode([top])}'`, values: { top1: unigram } }],
  };
  await saveTextModel(
    encoder,
    tokenizer,
    dims,
    dims.map((dim, j) => ({ dim, values: { 'masked-token acc': accuracy[j]! } })),
    options,
    context,
  );
  return {
    runTable,
    title: `text mlm: top-1 on ${masked} held-out tokens replaced by [MASK] (15%) after ${fit.steps} steps`,
    table,
    metrics: {
      task: 'mlm',
      steps: fit.steps,
      maskedTokens: masked,
      dims,
      accuracy,
      unigramBaseline: unigram,
      finalLoss: fit.finalLoss,
      vocabSize: tokenizer.vocabSize,
    },
  };
}

/** Synsets of WordNet in a seeded order: the first `evalCount` are held out. */
async function shuffledSynsets(
  options: TextFitOptions,
  context: RunContext,
  filter: (s: Synset) => boolean,
): Promise<Synset[]> {
  const all: Synset[] = [];
  for await (const s of readWordNet(options.wordnetDir)) if (filter(s)) all.push(s);
  const order = permutation(all.length, createRandom(context.seed, 5));
  return [...order].map((i) => all[i]!);
}

/**
 * What classify, retrieve and pairs train: a BERT built here (texts -> padded token ids) or a
 * frozen local ONNX backbone with a trainable projection (texts -> cached backbone features).
 */
interface TextEmbedder<Input> {
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
async function buildEmbedder(
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

async function fitClassify(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const synsets = await shuffledSynsets(options, context, (s) => s.definition.length > 0);
  const evalCount = Math.min(options.evalExamples ?? 1_000, Math.floor(synsets.length / 5));
  const test = synsets.slice(0, evalCount);
  const train = synsets.slice(evalCount, evalCount + (options.maxExamples ?? 20_000));
  context.log(
    `WordNet gloss -> lexicographer class: ${train.length} training, ${test.length} held-out glosses, ${WORDNET_LEXNAMES.length} classes`,
  );
  const embedder = (await buildEmbedder(options, context, () =>
    train.map((s) => s.definition),
  )) as TextEmbedder<unknown>;
  const { encoder } = embedder;
  const head = new SharedHead(encoder.embeddingDim, WORDNET_LEXNAMES.length, createRandom(context.seed, 11));
  const matryoshka = new MatryoshkaLoss(new ClassificationObjective(head), {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new MatryoshkaModel<unknown, ClassTarget>(encoder, matryoshka);
  const data = {
    size: train.length,
    batch: async (indices: Int32Array): Promise<SupervisedBatch<unknown, ClassTarget>> => {
      const input = await embedder.input([...indices].map((i) => train[i]!.definition));
      const labels = tf.tensor1d(
        [...indices].map((i) => train[i]!.lexFile),
        'int32',
      );
      return {
        input,
        target: { labels },
        size: indices.length,
        dispose: () => (embedder.release(input), labels.dispose()),
      };
    },
  };
  const fit = await new Trainer(model, data, {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  }).fit();
  const embeddings = await embedDataset(
    encoder,
    test.length,
    (idx) => embedder.input([...idx].map((i) => test[i]!.definition)),
    {
      batchSize: 128,
      dispose: embedder.release,
    },
  );
  const dims = [...matryoshka.dims];
  const top1 = await headTop1(head, embeddings, Int32Array.from(test.map((s) => s.lexFile)), dims);
  const table = formatTable(
    dims.map((m, j) => ({ m, acc: top1[j]! })),
    [
      { header: 'dim', value: (r) => String(r.m) },
      { header: 'top-1 %', value: (r) => percent(r.acc) },
    ],
  );
  if (encoder instanceof BertEncoder && embedder.tokenizer !== undefined)
    await saveTextModel(
      encoder,
      embedder.tokenizer,
      dims,
      dims.map((dim, j) => ({ dim, values: { 'top-1': top1[j]! } })),
      options,
      context,
    );
  encoder.dispose();
  const majority = majorityClass(
    train.map((s) => s.lexFile),
    test.map((s) => s.lexFile),
  );
  const runTable: RunTable = {
    data: 'wordnet lexnames (45 classes)',
    model: options.backbone ?? options.model ?? 'bert-tiny',
    task: `top-1 on ${test.length} held-out glosses, ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [{ key: 'top1', header: 'top-1 %', kind: 'percent' }],
    series: [{ key: 'mrl', label: 'MRL-E', rows: dims.map((dim, j) => ({ dim, values: { top1: top1[j]! } })) }],
    references: [
      {
        label: `majority class, always '${WORDNET_LEXNAMES[majority.label] ?? majority.label}'`,
        values: { top1: majority.accuracy },
      },
    ],
  };
  return {
    title: `text classify: WordNet gloss -> 45 lexicographer classes, top-1 on ${test.length} held-out glosses after ${fit.steps} steps`,
    table,
    metrics: {
      task: 'classify',
      steps: fit.steps,
      dims,
      top1,
      finalLoss: fit.finalLoss,
      majorityBaseline: majority.accuracy,
    },
    runTable,
  };
}

async function fitRetrieve(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const synsets = await shuffledSynsets(options, context, (s) => s.definition.length > 0);
  const withExamples = synsets.filter((s) => s.examples.length > 0);
  const evalCount = Math.min(options.evalExamples ?? 1_000, Math.floor(withExamples.length / 5));
  const test = withExamples.slice(0, evalCount);
  const train = withExamples.slice(evalCount, evalCount + (options.maxExamples ?? 20_000));
  // Database: every held-out gloss, then distractor glosses (no training synset is excluded: they are real competitors).
  const testIds = new Set(test.map((s) => s.id));
  const requested = options.databaseSize ?? 10_000;
  const size = requested === 0 ? synsets.length : Math.max(requested, test.length);
  const database = [...test, ...synsets.filter((s) => !testIds.has(s.id)).slice(0, size - test.length)];
  context.log(
    `WordNet example -> gloss: ${train.length} training pairs, ${test.length} held-out queries over ${database.length} glosses`,
  );
  const embedder = (await buildEmbedder(options, context, () =>
    train.flatMap((s) => [s.definition, ...s.examples]),
  )) as TextEmbedder<unknown>;
  const { encoder } = embedder;
  const matryoshka = new MatryoshkaLoss(new InBatchContrastiveObjective(), {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new PairModel<unknown>(encoder, matryoshka);
  let draw = 0;
  const data = {
    size: train.length,
    batch: async (indices: Int32Array): Promise<PairBatch<unknown>> => {
      draw += 1;
      const random = createRandom(context.seed, 6, draw);
      const rows = [...indices].map((i) => train[i]!);
      const queries = await embedder.input(rows.map((s) => s.examples[Math.floor(random() * s.examples.length)]!));
      const documents = await embedder.input(rows.map((s) => s.definition));
      return {
        queries,
        documents,
        size: indices.length,
        dispose: () => (embedder.release(queries), embedder.release(documents)),
      };
    },
  };
  const fit = await new Trainer(model, data, {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  }).fit();
  const embed = (texts: string[]) =>
    embedDataset(encoder, texts.length, (idx) => embedder.input([...idx].map((i) => texts[i]!)), {
      batchSize: 128,
      dispose: embedder.release,
    });
  const queries = await embed(test.map((s) => s.examples[0]!));
  const documents = await embed(database.map((s) => s.definition));
  const dims = [...matryoshka.dims];
  const metrics = await retrievalMetrics({
    database: documents,
    databaseLabels: Int32Array.from(database.map((_, i) => i)),
    queries,
    queryLabels: Int32Array.from(test.map((_, i) => i)),
    dims,
    ks: [1, 10],
  });
  const table = formatTable(metrics, [
    { header: 'dim', value: (r) => String(r.dim) },
    { header: 'recall@1 %', value: (r) => percent(r.recall[1]) },
    { header: 'recall@10 %', value: (r) => percent(r.recall[10]) },
  ]);
  if (encoder instanceof BertEncoder && embedder.tokenizer !== undefined)
    await saveTextModel(
      encoder,
      embedder.tokenizer,
      dims,
      metrics.map((r) => ({ dim: r.dim, values: { 'recall@1': r.recall[1]!, 'recall@10': r.recall[10]! } })),
      options,
      context,
    );
  encoder.dispose();
  const runTable: RunTable = {
    data: `wordnet (example -> gloss, ${database.length} glosses searched)`,
    model: options.backbone ?? options.model ?? 'bert-tiny',
    task: `retrieve, ${test.length} held-out queries after ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [
      { key: 'recall1', header: 'recall@1 %', kind: 'percent' },
      { key: 'recall10', header: 'recall@10 %', kind: 'percent' },
    ],
    series: [
      {
        key: 'mrl',
        label: 'MRL',
        rows: metrics.map((r) => ({ dim: r.dim, values: { recall1: r.recall[1], recall10: r.recall[10] } })),
      },
    ],
    references: [
      { label: 'chance', values: { recall1: 1 / database.length, recall10: Math.min(1, 10 / database.length) } },
    ],
  };
  return {
    runTable,
    title: `text retrieve: WordNet example -> gloss, ${test.length} held-out queries over ${database.length} glosses after ${fit.steps} steps`,
    table,
    metrics: {
      task: 'retrieve',
      steps: fit.steps,
      dims,
      recallAt10: metrics.map((r) => r.recall[10]),
      recallAt1: metrics.map((r) => r.recall[1]),
    },
  };
}

// Shared with the file tasks (tasks/classify.ts, tasks/pairs.ts) and encode.ts.
export { buildEmbedder, buildEncoder, disposeTokens, resolveTokenizer, tokenBatch, trainerOptions, type TextEmbedder };

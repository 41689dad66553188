import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import {
  createRandom,
  formatTable,
  initBackend,
  MatryoshkaLoss,
  MrlError,
  percent,
  resolveNesting,
  Trainer,
  writeFileAtomically,
  type BackendName,
  type RunContext,
  type RunReport,
  type RunTable,
  type TrainerOptions,
} from '@mrl/core';
import {
  padRows,
  TextTokenizer,
  trainWordPiece,
  wordPieceTokenizerFiles,
  writeTokenizerFiles,
  type SpecialIds,
  type TokenBatch,
} from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import {
  decodePairs,
  dropFailed,
  readOpenclipart,
  readPairsJsonl,
  readSidecarFolder,
  splitPairs,
  type PairRecord,
  type PixelSet,
} from './data.js';
import { alignModelOptions, createDualEncoder } from './di.js';
import { pairedRecall, zeroShotAccuracy, type Embeddings, type RecallRow } from './evaluate.js';
import { ClipContrastiveObjective } from './loss.js';
import { AlignModel, type AlignBatch, type DualEncoder } from './model.js';
import { saveAlignModel } from './save.js';

/**
 * Options of `fitAlign` (`mrl-cli fit --modality align`). Every field has a default sized for a
 * CPU run of minutes on openclipart.
 */
export interface AlignFitOptions {
  /** Named dual encoder (default `align-tiny`: resnet-tiny + 1-layer bert-tiny, d=64). */
  model?: string;
  /** Replace the named model's vision tower by any registered vision encoder (e.g. `vit-micro`). */
  vision?: string;
  /** Replace the named model's text tower by any registered text encoder (e.g. `bert-mini`). */
  text?: string;
  visionOverrides?: Record<string, unknown>;
  textOverrides?: Record<string, unknown>;
  /** `openclipart` (default), a `.jsonl` pairs file, or a folder of images with sidecar `.txt` captions. */
  data?: string;
  /** Folder of the openclipart SVGs (default /usr/share/openclipart/svg). */
  dataDir?: string;
  /** Use only the first N pairs, before the split (quick runs; `--train-limit`). */
  trainLimit?: number;
  /** Fraction held out as the test split, chosen by a hash of each file's path (default 0.1). */
  testFraction?: number;
  /** Side of the square RGB images (default 24). */
  imageSize?: number;
  /** Where decoded pixels are cached between runs (default ~/.cache/mrl/align; '' disables). */
  cacheDir?: string;
  /** Shared embedding size d (default: the model's, 64). */
  embeddingDim?: number;
  /** Nesting dims (default powers of two from `minDim` = 8 up to d). */
  dims?: number[];
  minDim?: number;
  /** Loss weight per nesting dim (default 1 each). */
  weights?: number[];
  /** Train this many nesting dims per step (sentence-transformers' n_dims_per_step; default all). */
  dimsPerStep?: number;
  /** WordPiece vocabulary trained on the training captions (default 2000). */
  vocabSize?: number;
  /** Tokens per caption, [CLS] and [SEP] included (default 24). */
  maxLength?: number;
  steps?: number;
  /** Passes over the training pairs when `steps` is absent (default 4). */
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  clipNorm?: number;
  /** Also train the same dual encoder with the full-dim loss only (`dims: [d]`) and evaluate its prefixes (default true). */
  compareFullDim?: boolean;
  /** Zero-shot prompt; `{label}` becomes the class name (default `a drawing of a {label}`). */
  promptTemplate?: string;
  /** Tensor backend (default wasm). */
  backend?: BackendName;
  checkpointEvery?: number;
}

interface Prepared {
  train: PairRecord[];
  test: PairRecord[];
  trainPixels: PixelSet;
  testPixels: PixelSet;
  tokenizer: TextTokenizer;
  trainIds: number[][];
  testIds: number[][];
}

async function loadPairs(options: AlignFitOptions): Promise<{ name: string; pairs: PairRecord[] }> {
  const data = options.data ?? 'openclipart';
  if (data === 'openclipart')
    return {
      name: 'openclipart',
      pairs: await readOpenclipart(
        options.dataDir,
        options.trainLimit === undefined ? {} : { limit: options.trainLimit },
      ),
    };
  const path = resolve(data);
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `no pairs at ${path}.`,
      'Pass --data openclipart, a .jsonl pairs file or a folder of images with sidecar .txt captions.',
      { cause },
    );
  }
  const pairs = isDir ? await readSidecarFolder(path) : await readPairsJsonl(path);
  return { name: basename(path), pairs: options.trainLimit === undefined ? pairs : pairs.slice(0, options.trainLimit) };
}

/** NHWC float images in [-1, 1] from uint8 RGB rows. */
export function imageTensor(set: PixelSet, indices: ArrayLike<number>): tf.Tensor4D {
  const stride = set.size * set.size * 3;
  const out = new Float32Array(indices.length * stride);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b]! * stride;
    for (let j = 0; j < stride; j++) out[b * stride + j] = set.pixels[src + j]! / 127.5 - 1;
  }
  return tf.tensor4d(out, [indices.length, set.size, set.size, 3]);
}

/** Token ids rows -> padded `[CLS] ... [SEP]` batch tensors. */
export function tokenTensor(rows: readonly (readonly number[])[], maxLength: number, special: SpecialIds): TokenBatch {
  const encoded = padRows(rows, maxLength, special);
  const shape: [number, number] = [encoded.batch, encoded.length];
  return {
    ids: tf.tensor2d(encoded.ids, shape, 'int32'),
    attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32'),
  };
}

/** Embeds every row of a split in eval mode, `batch` at a time. */
async function embedAll(
  count: number,
  batch: number,
  dim: number,
  run: (indices: number[]) => tf.Tensor2D,
): Promise<Embeddings> {
  const data = new Float32Array(count * dim);
  for (let start = 0; start < count; start += batch) {
    const indices = Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i);
    const z = run(indices);
    data.set(await z.data(), start * dim);
    z.dispose();
  }
  return { data, rows: count, dim };
}

export interface AlignEvaluation {
  recall: RecallRow[];
  zeroShot: number[];
  labels: string[];
  logitScale: number;
}

/** Recall@1/5/10 both ways and zero-shot top-1 per dim on the test split. */
export async function evaluateAlign(
  encoder: DualEncoder,
  split: { pixels: PixelSet; ids: number[][]; labels?: (string | undefined)[] },
  tokenizer: TextTokenizer,
  dims: readonly number[],
  options: { maxLength: number; promptTemplate?: string; batchSize?: number },
): Promise<Omit<AlignEvaluation, 'logitScale'>> {
  const batch = options.batchSize ?? 256;
  const d = encoder.embeddingDim;
  const images = await embedAll(split.pixels.count, batch, d, (ix) =>
    tf.tidy(() => encoder.encodeImages(imageTensor(split.pixels, ix), false)),
  );
  const texts = await embedAll(split.ids.length, batch, d, (ix) =>
    tf.tidy(() =>
      encoder.encodeTexts(
        tokenTensor(
          ix.map((i) => split.ids[i]!),
          options.maxLength,
          tokenizer.special,
        ),
        false,
      ),
    ),
  );
  const recall = pairedRecall(images, texts, dims);
  const labelNames = [...new Set((split.labels ?? []).filter((l): l is string => l !== undefined))].sort();
  let zeroShot: number[] = [];
  if (labelNames.length > 1) {
    const template = options.promptTemplate ?? 'a drawing of a {label}';
    const promptIds = labelNames.map((l) =>
      tokenizer.encode(template.replaceAll('{label}', l.replace(/[_-]+/g, ' ')), false),
    );
    const prompts = await embedAll(promptIds.length, batch, d, (ix) =>
      tf.tidy(() =>
        encoder.encodeTexts(
          tokenTensor(
            ix.map((i) => promptIds[i]!),
            options.maxLength,
            tokenizer.special,
          ),
          false,
        ),
      ),
    );
    const labelled = split.labels!.map((l, i) => ({ l, i })).filter((x) => x.l !== undefined);
    const subset: Embeddings = { data: new Float32Array(labelled.length * d), rows: labelled.length, dim: d };
    labelled.forEach((x, r) => subset.data.set(images.data.subarray(x.i * d, (x.i + 1) * d), r * d));
    zeroShot = zeroShotAccuracy(subset, Int32Array.from(labelled.map((x) => labelNames.indexOf(x.l!))), prompts, dims);
  }
  return { recall, zeroShot, labels: labelNames };
}

async function prepare(options: AlignFitOptions, context: RunContext): Promise<Prepared & { dataName: string }> {
  const t0 = performance.now();
  const { name, pairs } = await loadPairs(options);
  const { train, test } = splitPairs(pairs, options.testFraction ?? 0.1);
  if (train.length < 2 || test.length < 2) {
    throw new MrlError(
      'invalid-argument',
      `${pairs.length} pairs give ${train.length} training and ${test.length} test pairs; both need at least 2.`,
      'Use more pairs or change testFraction.',
    );
  }
  context.log(
    `data: ${name}, ${train.length} training / ${test.length} test pairs (split by path hash) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const size = options.imageSize ?? 24;
  const cacheDir = options.cacheDir ?? join(homedir(), '.cache', 'mrl', 'align');
  const decode = async (split: PairRecord[], which: string): Promise<PixelSet> => {
    const t = performance.now();
    const set = await decodePairs(split, size, {
      ...(cacheDir === '' ? {} : { cacheFile: join(cacheDir, `${name}-${which}-${size}px.bin`) }),
      onProgress: (done, total) => {
        if (done === total || done % 1000 === 0) context.log(`decoding ${which} images: ${done}/${total}`);
      },
      onSkip: (path, why) => context.log(`cannot decode ${path}: ${why}`),
    });
    context.log(
      `${which} images: ${set.count} x ${size}x${size} RGB in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    return set;
  };
  const trainSet = dropFailed(train, await decode(train, 'train'));
  const testSet = dropFailed(test, await decode(test, 'test'));
  const dropped = train.length + test.length - trainSet.pairs.length - testSet.pairs.length;
  if (dropped > 0) context.log(`dropped ${dropped} pairs whose image could not be decoded`);
  const tokenizerDir = join(context.runDir, 'tokenizer');
  const vocab = await trainWordPiece(
    trainSet.pairs.map((p) => p.caption),
    { vocabSize: options.vocabSize ?? 2000 },
  );
  await writeTokenizerFiles(tokenizerDir, wordPieceTokenizerFiles(vocab));
  const tokenizer = await TextTokenizer.load(tokenizerDir);
  context.log(
    `tokenizer: WordPiece, ${tokenizer.vocabSize} pieces trained on the training captions -> ${tokenizerDir}`,
  );
  const maxLength = options.maxLength ?? 24;
  const ids = (p: PairRecord): number[] => tokenizer.encode(p.caption, false).slice(0, maxLength - 2);
  return {
    dataName: name,
    train: trainSet.pairs,
    test: testSet.pairs,
    trainPixels: trainSet.pixels,
    testPixels: testSet.pixels,
    tokenizer,
    trainIds: trainSet.pairs.map(ids),
    testIds: testSet.pairs.map(ids),
  };
}

/**
 * Trains an ALIGN-style dual encoder with the Matryoshka contrastive loss on image-caption pairs
 * (default: Debian's openclipart drawings), then the same model with the full-dim loss only,
 * and reports recall@1/5/10 in both directions and zero-shot top-1 at every nesting dim of the
 * held-out split.
 *
 * @example
 * ```ts
 * const report = await fitAlign({ epochs: 2, trainLimit: 1000 }, { runDir: 'runs/align', seed: 0, resume: false, log: console.log });
 * console.log(report.table);
 * ```
 */
export async function fitAlign(options: AlignFitOptions, context: RunContext): Promise<RunReport> {
  // The caller usually started the backend already (the CLI prints which); this makes sure one runs.
  await initBackend(options.backend ?? 'wasm');
  const modelName = options.model ?? 'align-tiny';
  const base = alignModelOptions(modelName, {
    ...(options.vision === undefined ? {} : { vision: options.vision }),
    ...(options.text === undefined ? {} : { text: options.text }),
    ...(options.embeddingDim === undefined ? {} : { embeddingDim: options.embeddingDim }),
    ...(options.visionOverrides === undefined ? {} : { visionOverrides: options.visionOverrides }),
  });
  const d = base.embeddingDim;
  const nesting = resolveNesting({
    embeddingDim: d,
    ...(options.dims === undefined ? {} : { dims: options.dims }),
    ...(options.minDim === undefined ? {} : { minDim: options.minDim }),
    ...(options.weights === undefined ? {} : { weights: options.weights }),
  });
  const { dims } = nesting;
  const maxLength = options.maxLength ?? 24;
  const data = await prepare(options, context);
  const special = data.tokenizer.special;
  const batchSize = options.batchSize ?? 128;
  const imageSize = options.imageSize ?? 24;

  const totalSteps =
    options.steps ?? Math.max(1, Math.round((options.epochs ?? 4) * Math.ceil(data.train.length / batchSize)));
  const trainerFor = (label: string): TrainerOptions => ({
    ...(options.steps === undefined ? { epochs: options.epochs ?? 4 } : { steps: options.steps }),
    batchSize,
    seed: context.seed,
    optimizer: { type: 'adamw', lr: options.lr ?? 3e-3, weightDecay: options.weightDecay ?? 0.01 },
    warmupSteps: options.warmupSteps ?? Math.min(20, Math.floor(totalSteps / 10)),
    clipNorm: options.clipNorm ?? 2,
    checkpoint: {
      dir: join(context.runDir, 'checkpoints', label),
      every: options.checkpointEvery ?? 1_000_000,
      ...(context.keepCheckpoints === undefined ? {} : { keep: context.keepCheckpoints }),
    },
    resume: context.resume,
    ...(context.fromCheckpoint === undefined ? {} : { fromCheckpoint: context.fromCheckpoint }),
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event) => context.onEvent?.(event, label),
  });
  const source = {
    size: data.train.length,
    batch: (indices: Int32Array): AlignBatch => {
      const images = imageTensor(data.trainPixels, indices);
      const tokens = tokenTensor(
        Array.from(indices, (i) => data.trainIds[i]!),
        maxLength,
        special,
      );
      return {
        images,
        tokens,
        size: indices.length,
        dispose: () => tf.dispose([images, tokens.ids, tokens.attentionMask]),
      };
    },
  };

  const runOne = async (
    label: string,
    trainDims: readonly number[],
    weights: readonly number[],
  ): Promise<AlignEvaluation & { steps: number; seconds: number }> => {
    const encoder = createDualEncoder(
      {
        ...base,
        textOverrides: {
          ...base.textOverrides,
          ...options.textOverrides,
          vocabSize: data.tokenizer.vocabSize,
          maxPositions: Math.max(maxLength, 32),
        },
        visionOverrides: { ...base.visionOverrides, ...(base.vision.startsWith('vit') ? { imageSize } : {}) },
      },
      createRandom(context.seed, 4),
    );
    const objective = new ClipContrastiveObjective();
    const matryoshka = new MatryoshkaLoss(objective, {
      embeddingDim: d,
      dims: trainDims,
      weights,
      ...(options.dimsPerStep === undefined ? {} : { dimsPerStep: options.dimsPerStep }),
    });
    const model = new AlignModel(encoder, matryoshka);
    const params = [...model.variables().values()].reduce((s, v) => s + (v.trainable ? v.size : 0), 0);
    context.log(
      `${label}: ${encoder.config.architecture}, ${(params / 1e6).toFixed(2)}M parameters, loss on dims ${trainDims.join(', ')}`,
    );
    const t0 = performance.now();
    const result = await new Trainer(model, source, trainerFor(label)).fit();
    const seconds = (performance.now() - t0) / 1000;
    const evaluation = await evaluateAlign(
      encoder,
      { pixels: data.testPixels, ids: data.testIds, labels: data.test.map((p) => p.label) },
      data.tokenizer,
      dims,
      {
        maxLength,
        ...(options.promptTemplate === undefined ? {} : { promptTemplate: options.promptTemplate }),
      },
    );
    const logitScale = await objective.scaleValue();
    context.log(
      `${label}: ${result.steps} steps in ${seconds.toFixed(0)} s, final loss ${result.finalLoss.toFixed(3)}, logit scale ${logitScale.toFixed(1)}`,
    );
    if (label === 'mrl') {
      const modelDir = join(context.runDir, 'model');
      await saveAlignModel(modelDir, encoder, join(context.runDir, 'tokenizer'), dims);
      context.log(`mrl: model -> ${modelDir}`);
    }
    encoder.dispose();
    objective.dispose();
    return { ...evaluation, logitScale, steps: result.steps, seconds };
  };

  context.onPlan?.(['mrl', ...(options.compareFullDim === false ? [] : [`full-${d}`])]);
  const mrl = await runOne('mrl', dims, nesting.weights);
  const full = options.compareFullDim === false ? undefined : await runOne(`full-${d}`, [d], [1]);

  const nTest = data.test.length;
  const rows = dims.map((dim, j) => ({
    dim,
    m: mrl.recall[j]!,
    f: full?.recall[j],
    zs: mrl.zeroShot[j],
    fzs: full?.zeroShot[j],
  }));
  type Row = (typeof rows)[number];
  const r = (side: 'imageToText' | 'textToImage', k: number, pick: (row: Row) => RecallRow | undefined) => (row: Row) =>
    percent(pick(row)?.[side][k]);
  const table = formatTable(rows, [
    { header: 'dim', value: (x) => String(x.dim) },
    { header: 'I->T R@1', value: r('imageToText', 1, (x) => x.m) },
    { header: 'R@5', value: r('imageToText', 5, (x) => x.m) },
    { header: 'R@10', value: r('imageToText', 10, (x) => x.m) },
    { header: 'T->I R@1', value: r('textToImage', 1, (x) => x.m) },
    { header: 'R@5', value: r('textToImage', 5, (x) => x.m) },
    { header: 'R@10', value: r('textToImage', 10, (x) => x.m) },
    ...(mrl.zeroShot.length > 0 ? [{ header: 'zero-shot %', value: (x: Row) => percent(x.zs) }] : []),
    ...(full === undefined
      ? []
      : [
          { header: `full-${d} I->T R@10`, value: r('imageToText', 10, (x) => x.f) },
          { header: 'T->I R@10', value: r('textToImage', 10, (x) => x.f) },
          ...(full.zeroShot.length > 0 ? [{ header: 'zero-shot %', value: (x: Row) => percent(x.fzs) }] : []),
        ]),
  ]);
  const counts = new Map<string, number>();
  for (const p of data.test) if (p.label !== undefined) counts.set(p.label, (counts.get(p.label) ?? 0) + 1);
  const majority =
    counts.size > 0 ? Math.max(...counts.values()) / data.test.filter((p) => p.label !== undefined).length : undefined;
  const footer = [
    `MRL (left) vs the same model trained with the full-${d} loss only and truncated (right); recall in %, ties count against the query.`,
    `Chance: R@1 ${percent(1 / nTest)}, R@5 ${percent(5 / nTest)}, R@10 ${percent(10 / nTest)} (N_test = ${nTest}).`,
    ...(majority === undefined
      ? []
      : [
          `Zero-shot over ${counts.size} folders: uniform chance ${percent(1 / counts.size)}, majority class ${percent(majority)}.`,
        ]),
  ].join('\n');
  const recallValues = (row: RecallRow | undefined, zeroShot: number | undefined) => ({
    i2t1: row?.imageToText[1],
    i2t5: row?.imageToText[5],
    i2t10: row?.imageToText[10],
    t2i1: row?.textToImage[1],
    t2i5: row?.textToImage[5],
    t2i10: row?.textToImage[10],
    ...(zeroShot === undefined ? {} : { zeroShot }),
  });
  const runTable: RunTable = {
    data: data.dataName,
    model: `${modelName} (${base.vision} + ${base.text})`,
    task: `image <-> text retrieval, test split (${nTest} pairs)`,
    embeddingDim: d,
    metrics: [
      { key: 'i2t1', header: 'I->T R@1 %', kind: 'percent' },
      { key: 'i2t10', header: 'I->T R@10 %', kind: 'percent' },
      { key: 't2i1', header: 'T->I R@1 %', kind: 'percent' },
      { key: 't2i10', header: 'T->I R@10 %', kind: 'percent' },
      ...(mrl.zeroShot.length > 0 ? [{ key: 'zeroShot', header: 'zero-shot %', kind: 'percent' as const }] : []),
    ],
    series: [
      { key: 'mrl', label: 'MRL', rows: rows.map((x) => ({ dim: x.dim, values: recallValues(x.m, x.zs) })) },
      ...(full === undefined
        ? []
        : [
            {
              key: 'trunc',
              label: `Trunc-${d}`,
              rows: rows.map((x) => ({ dim: x.dim, values: recallValues(x.f, x.fzs) })),
            },
          ]),
    ],
    references: [
      {
        label: 'chance',
        values: {
          i2t1: 1 / nTest,
          i2t10: Math.min(1, 10 / nTest),
          t2i1: 1 / nTest,
          t2i10: Math.min(1, 10 / nTest),
          ...(majority === undefined ? {} : { zeroShot: majority }),
        },
      },
    ],
    notes: [
      `Trunc-${d}: the same model trained with the full-${d} loss only, its embedding truncated; zero-shot chance is the majority folder.`,
    ],
  };
  const metrics = {
    table: runTable,
    model: modelName,
    vision: base.vision,
    text: base.text,
    data: data.dataName,
    imageSize,
    dims,
    trainCount: data.train.length,
    testCount: nTest,
    chance: { r1: 1 / nTest, r5: 5 / nTest, r10: 10 / nTest },
    zeroShotLabels: mrl.labels,
    zeroShotMajority: majority,
    mrl,
    ...(full === undefined ? {} : { fullDim: full }),
  };
  await writeFileAtomically(join(context.runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  return {
    title: `${data.dataName}, ${base.vision} + ${base.text}, d=${d}, MRL contrastive (test split, ${nTest} pairs)`,
    table: `${table}\n\n${footer}`,
    metrics,
    runTable,
  };
}

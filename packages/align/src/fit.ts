import {
  MrlError,
  checkBaselines,
  initBackend,
  resolveNesting,
  runPlan,
  writeRunMetrics,
  type Baseline,
  type BackendName,
  type RunContext,
  type RunReport,
  type TrainSettings,
} from '@mrl/core';
import { alignModelOptions } from './di.js';
import { trainAlignModel, svdScores, untrainedScores, type AlignModelResult, type AlignTask } from './tasks/align.js';
import { prepare } from './tasks/prepare.js';
import {
  alignFooter,
  alignRunTable,
  alignTextTable,
  galleryCount,
  retrievalScope,
  zeroShotMajority,
  type AlignRows,
} from './tasks/report.js';

export { evaluateAlign, type AlignEvaluation } from './tasks/evaluate.js';
export { imageTensor, tokenTensor } from './tensors.js';

/**
 * Options of `fitAlign` (`mrl-cli fit --modality align`). Every field has a default sized for a
 * CPU run of minutes on openclipart.
 */
export interface AlignFitOptions extends TrainSettings {
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
  /**
   * Baselines in the same per-dim table (default `['rand']`): `ff` (a dual encoder per dim),
   * `svd` (PCA of the model trained with the full-dim loss only), `rand` (that model's embedding
   * truncated, the table's `Trunc-d`).
   */
  compare?: Baseline[];
  /**
   * Retrieval candidates of the test queries (default `test`): `test`, the test split's captions
   * (images) only; `all`, the whole collection: every test image is ranked among all captions,
   * training captions included, and every test caption among all images (`--gallery all`).
   */
  gallery?: AlignGallery;
  /** Zero-shot prompt; `{label}` becomes the class name (default `a drawing of a {label}`). */
  promptTemplate?: string;
  /** Tensor backend (default wasm). */
  backend?: BackendName;
  checkpointEvery?: number;
}

/** Values of `AlignFitOptions.gallery`. */
export const ALIGN_GALLERIES = ['test', 'all'] as const;
export type AlignGallery = (typeof ALIGN_GALLERIES)[number];

/** Refuses a gallery name other than `test` or `all`. */
export function checkGallery(gallery: unknown): void {
  if (gallery !== undefined && !(ALIGN_GALLERIES as readonly unknown[]).includes(gallery))
    throw new MrlError(
      'invalid-argument',
      `gallery ${JSON.stringify(gallery)} is not one of ${ALIGN_GALLERIES.join(', ')}.`,
      "Use gallery 'test' (the test pairs' captions and images, the default) or 'all' (every pair of the collection as candidates; --gallery all).",
    );
}

/** The run's settings resolved: the dual encoder's options, the nesting dims and weights. */
async function alignTask(options: AlignFitOptions, context: RunContext): Promise<AlignTask> {
  const base = alignModelOptions(options.model ?? 'align-tiny', {
    ...(options.vision === undefined ? {} : { vision: options.vision }),
    ...(options.text === undefined ? {} : { text: options.text }),
    ...(options.embeddingDim === undefined ? {} : { embeddingDim: options.embeddingDim }),
    ...(options.visionOverrides === undefined ? {} : { visionOverrides: options.visionOverrides }),
  });
  const nesting = resolveNesting({
    embeddingDim: base.embeddingDim,
    ...(options.dims === undefined ? {} : { dims: options.dims }),
    ...(options.minDim === undefined ? {} : { minDim: options.minDim }),
    ...(options.weights === undefined ? {} : { weights: options.weights }),
  });
  return {
    options,
    context,
    data: await prepare(options, context),
    base,
    dims: [...nesting.dims],
    weights: [...nesting.weights],
    maxLength: options.maxLength ?? 24,
    imageSize: options.imageSize ?? 24,
  };
}

/** Trains every model of the plan; FF, SVD and truncation rows come from the `ff-<m>` models. */
async function trainAll(
  task: AlignTask,
  compare: readonly Baseline[],
): Promise<{ rows: AlignRows; models: Record<string, AlignModelResult> }> {
  const d = task.base.embeddingDim;
  const plan = runPlan(task.dims, compare);
  task.context.onPlan?.(plan.labels);
  const models: Record<string, AlignModelResult> = {};
  for (const label of plan.labels) models[label] = await trainAlignModel(task, label);
  const mrl = models.mrl!;
  const full = models[`ff-${d}`];
  const ff = new Map(
    plan.ffDims.map((m) => {
      const r = models[`ff-${m}`]!;
      const at = m === d ? task.dims.length - 1 : 0;
      return [m, { recall: r.recall[at]!, ...(r.zeroShot[at] === undefined ? {} : { zeroShot: r.zeroShot[at] }) }];
    }),
  );
  const rows: AlignRows = {
    mrl,
    ff,
    ...(full !== undefined && compare.includes('svd') ? { svd: svdScores(task, full.test) } : {}),
    ...(full !== undefined && compare.includes('rand') ? { trunc: full } : {}),
    ...(compare.includes('untrained') ? { untrained: await untrainedScores(task) } : {}),
  };
  return { rows, models };
}

/**
 * Trains an ALIGN-style dual encoder with the Matryoshka contrastive loss on image-caption pairs
 * (default: Debian's openclipart drawings) and the baselines of `compare` by the same code (by
 * default the same model with the full-dim loss only, truncated), and reports recall@1/5/10 in
 * both directions and zero-shot top-1 at every nesting dim of the held-out split.
 *
 * @example
 * ```ts
 * const report = await fitAlign({ epochs: 2, trainLimit: 1000, compare: ['ff', 'svd', 'rand'] }, { runDir: 'runs/align', seed: 0, resume: false, log: console.log });
 * console.log(report.table);
 * ```
 */
export async function fitAlign(options: AlignFitOptions, context: RunContext): Promise<RunReport> {
  const compare = options.compare ?? ['rand'];
  checkBaselines(compare);
  checkGallery(options.gallery);
  // The caller usually started the backend already (the CLI prints which); this makes sure one runs.
  await initBackend(options.backend ?? 'wasm');
  const modelName = options.model ?? 'align-tiny';
  const task = await alignTask({ ...options, compare }, context);
  const { rows, models } = await trainAll(task, compare);
  const mrl = models.mrl!;
  const d = task.base.embeddingDim;
  const nTest = task.data.test.length;
  const candidates = galleryCount(task);
  const runTable = alignRunTable(task, rows, modelName);
  const { base, data } = task;
  const full = models[`ff-${d}`];
  const metrics = {
    table: runTable,
    model: modelName,
    vision: base.vision,
    text: base.text,
    data: data.dataName,
    imageSize: task.imageSize,
    dims: task.dims,
    trainCount: data.train.length,
    testCount: nTest,
    gallery: task.options.gallery ?? 'test',
    candidates,
    chance: { r1: 1 / candidates, r5: Math.min(1, 5 / candidates), r10: Math.min(1, 10 / candidates) },
    zeroShotLabels: mrl.labels,
    zeroShotMajority: zeroShotMajority(task).majority,
    mrl: withoutEmbeddings(mrl),
    ...(full === undefined ? {} : { fullDim: withoutEmbeddings(full) }),
    ...(rows.ff.size > 0 ? { ff: Object.fromEntries(rows.ff) } : {}),
    ...(rows.svd === undefined ? {} : { svd: rows.svd }),
    ...(rows.untrained === undefined ? {} : { untrained: rows.untrained }),
  };
  await writeRunMetrics(context.runDir, metrics);
  return {
    title: `${data.dataName}, ${base.vision} + ${base.text}, d=${d}, MRL contrastive (${retrievalScope(task)})`,
    table: `${alignTextTable(task, rows)}\n\n${alignFooter(task, rows)}`,
    metrics,
    runTable,
  };
}

/** A model's scores for metrics.json, without its embeddings. */
function withoutEmbeddings(result: AlignModelResult): Omit<AlignModelResult, 'test'> {
  const { test: _test, ...rest } = result;
  return rest;
}

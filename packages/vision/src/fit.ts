import { join } from 'node:path';
import {
  BASELINES,
  checkBaselines,
  checkTrainOnly,
  runPlan,
  writeRunMetrics,
  type Baseline,
  type ClassifierRun,
  type DimRow,
  type Encoder,
  type HeadKind,
  type OptimizerConfig,
  type RunContext,
  type RunReport,
  type TrainSettings,
} from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import type { Corruption } from './eval/corruptions.js';
import { visionModelConfig } from './models/registry.js';
import { saveVisionModel } from './save.js';
import {
  disposeRun,
  embedSplits,
  fullModelBaselines,
  scoreEmbeddings,
  trainVisionModel,
  untrainedRows,
  type VisionTask,
} from './tasks/classify.js';
import { prepareVisionRun } from './tasks/prepare.js';
import { robustnessRows, robustnessTable, visionRunTable, visionTextTable, type VisionRows } from './tasks/report.js';

/**
 * Baselines a run can train beside the Matryoshka model, by the same code (core's
 * {@link BASELINES}): `ff`: an independent model per dim; `svd`: the full-dim model's embedding
 * projected on its top-m principal directions; `rand`: the first m dims of the full-dim model
 * (random feature selection); `untrained`: the d-dim encoder at its random initialisation (the
 * MRL model's seed), never trained. `svd` and `rand` reuse FF's d-dim model when `ff` runs too.
 */
export const VISION_BASELINES = BASELINES;
export type VisionBaseline = Baseline;

export interface VisionFitOptions extends TrainSettings {
  /** Encoder name from the registry: `mlp`, `resnet-tiny`, `resnet18-cifar`, `vit-micro`, ... */
  model: string;
  /** `fashion-mnist`, read from `dataDir` (default: Debian's install folder). */
  data: string;
  dataDir?: string;
  embeddingDim: number;
  dims?: number[];
  /** Relative importance of each nesting dim in the MRL loss (default 1 each); FF ignores it. */
  weights?: number[];
  minDim?: number;
  head: HeadKind;
  /**
   * The linear heads' learning rate as a multiple of the encoder's, for MRL, FF and the probes on
   * SVD, Rand and Untrained features alike (default 1). With many classes the heads lag their embedding; see `trainClassifier`.
   */
  headLrScale?: number;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  warmupSteps?: number;
  clipNorm?: number;
  /** Use only the first N training examples (quick runs); they are also the 1-NN database. */
  trainLimit?: number;
  /** Use only the first N test examples. */
  testLimit?: number;
  /** Test queries used for the retrieval metrics (default 2000). */
  maxQueries?: number;
  /**
   * Centre every method's embeddings by the training set's mean before cosine 1-NN and mAP
   * (default true). SVD's PCA features are centred by construction; centring MRL, FF and Rand
   * too compares them like for like.
   */
  centerRetrieval?: boolean;
  compare: VisionBaseline[];
  /** Dims to train FF models for (default: every nesting dim). */
  ffDims?: number[];
  /**
   * Train only these models (`mrl`, `ff-<m>`) to their final checkpoint and return without
   * evaluating: a run split over processes, each with its own list and the same `runDir`, is
   * then evaluated by one call with `resume` that finds every model trained.
   */
  trainOnly?: string[];
  /** Corrupted test sets to evaluate the MRL model on (`true`: noise, blur, contrast at severity 3). */
  robustness?: boolean | Corruption[];
  /** Save the MRL encoder to `<runDir>/model` (config.json + weights.safetensors). Default true. */
  saveModel?: boolean;
  checkpointEvery?: number;
  /**
   * Builds the encoder for an embedding dim instead of looking `model` up in the registry (a
   * plug-in's registration from the CLI); `model` then only names the run.
   */
  createEncoder?: (embeddingDim: number, input: VisionInputShape) => Encoder<tf.Tensor>;
  /** Folders and manifests: image side in pixels (default 32). */
  imageSize?: number;
  /** Folders and manifests: 1 (grey) or 3 (RGB, default). */
  channels?: 1 | 3;
  /** Folders and manifests without train/test sub-folders: the fraction held out (default 0.2). */
  testFraction?: number;
  /** Corrupt images are an error instead of being skipped and counted. */
  strict?: boolean;
  /** Folders and manifests: random-resized crops and flips in training (default true). */
  augment?: boolean;
}

/** Height, width and channels of the images a vision encoder reads: they come from the data. */
export interface VisionInputShape {
  height: number;
  width: number;
  channels: number;
}

/** Trains the models named by `trainOnly` to their final checkpoint, without evaluating. */
async function trainOnly(task: VisionTask, labels: readonly string[]): Promise<RunReport> {
  checkTrainOnly(labels, task.data.dims);
  for (const label of labels) disposeRun(await trainVisionModel(task, label));
  const { options, data } = task;
  return {
    title: `${data.name}, ${options.model}, d=${options.embeddingDim}: trained ${labels.join(', ')}`,
    table: '',
    metrics: { trained: labels },
  };
}

/** FF models per dim, then SVD and truncation from the d-dim model without MRL (FF's when it trained one). */
async function baselineRows(task: VisionTask): Promise<Omit<VisionRows, 'mrl' | 'untrained'>> {
  const { options, data } = task;
  const d = options.embeddingDim;
  const plan = runPlan(data.dims, options.compare, options.ffDims);
  const ff = new Map<number, DimRow>();
  let fullRun: ClassifierRun | undefined;
  for (const m of plan.ffDims) {
    const run = await trainVisionModel(task, `ff-${m}`);
    const [row] = await scoreEmbeddings(task, run, ...(await embedSplits(run, data)), [m]);
    ff.set(m, row!);
    if (m === d) fullRun = run;
    else run.encoder.dispose();
  }
  let fixed = { svd: new Map<number, DimRow>(), rand: new Map<number, DimRow>() };
  if (options.compare.includes('svd') || options.compare.includes('rand')) {
    fullRun ??= await trainVisionModel(task, `ff-${d}`);
    fixed = await fullModelBaselines(task, fullRun);
  }
  fullRun?.encoder.dispose();
  return { ff, ...fixed };
}

/**
 * Trains a Matryoshka image classifier (and the requested baselines, by the same code) and
 * returns the per-dim table: linear top-1, 1-NN top-1, mAP@10, per baseline; optionally the
 * same metrics on corrupted test images.
 *
 * @example
 * ```ts
 * const report = await fitVision({ model: 'resnet-tiny', data: 'fashion-mnist', embeddingDim: 64, head: 'separate',
 *   epochs: 1, batchSize: 128, optimizer: { type: 'adamw', lr: 2e-3 }, compare: ['ff', 'svd'] }, context);
 * console.log(report.table);
 * ```
 */
export async function fitVision(options: VisionFitOptions, context: RunContext): Promise<RunReport> {
  checkBaselines(options.compare);
  if (options.createEncoder === undefined) visionModelConfig(options.model); // unknown names fail before the data loads
  const data = await prepareVisionRun(options, context);
  const task: VisionTask = {
    options,
    context,
    data,
    retrieval: { maxQueries: options.maxQueries ?? 2000, center: options.centerRetrieval ?? true },
  };
  if (options.trainOnly !== undefined) return trainOnly(task, options.trainOnly);
  const plan = runPlan(data.dims, options.compare, options.ffDims);
  context.onPlan?.([
    ...plan.labels,
    ...(options.compare.includes('svd') ? ['svd-heads'] : []),
    ...(options.compare.includes('rand') ? ['rand-heads'] : []),
    ...(options.compare.includes('untrained') ? ['untrained-heads'] : []),
  ]);
  const mrlRun = await trainVisionModel(task, 'mrl');
  const [mrlTrainEmb, mrlTestEmb] = await embedSplits(mrlRun, data);
  const rows: VisionRows = {
    mrl: await scoreEmbeddings(task, mrlRun, mrlTrainEmb, mrlTestEmb, data.dims),
    ...(await baselineRows(task)),
    untrained: options.compare.includes('untrained') ? await untrainedRows(task) : new Map(),
  };
  const robustness = await robustnessRows(task, mrlRun, mrlTrainEmb);
  const notes = robustnessTable(data.dims, rows.mrl, robustness);
  if (options.saveModel !== false) {
    const dir = join(context.runDir, 'model');
    await saveVisionModel(dir, mrlRun.encoder, { dims: data.dims.join(','), head: options.head });
    context.log(`model: ${dir}`);
  }
  const runTable = visionRunTable(task, rows, notes);
  const metrics = {
    table: runTable,
    model: options.model,
    data: options.data,
    head: options.head,
    dims: data.dims,
    trainCount: data.trainCount,
    testCount: data.test.count,
    mrl: rows.mrl,
    ff: Object.fromEntries(rows.ff),
    svd: Object.fromEntries(rows.svd),
    rand: Object.fromEntries(rows.rand),
    ...(rows.untrained.size > 0 ? { untrained: Object.fromEntries(rows.untrained) } : {}),
    robustness,
  };
  await writeRunMetrics(context.runDir, metrics);
  disposeRun(mrlRun);
  return {
    title: `${data.name}, ${options.model}, d=${options.embeddingDim}, ${options.head === 'shared' ? 'MRL-E' : 'MRL'} (test set)`,
    table: visionTextTable(rows) + notes,
    metrics,
    runTable,
  };
}

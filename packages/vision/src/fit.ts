import { join } from 'node:path';
import {
  createRandom,
  embedArrays,
  formatTable,
  headOf,
  headTop1,
  majorityClass,
  MrlError,
  percent,
  resolveNesting,
  retrievalMetrics,
  trainClassifier,
  writeFileAtomically,
  type ArrayDataset,
  type ClassifierRun,
  type DimRow,
  type EmbeddingMatrix,
  type Encoder,
  type HeadKind,
  type OptimizerConfig,
  type RunContext,
  type RunReport,
  type RunTable,
  type TableSeries,
  type TrainerOptions,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { corruptImages, DEFAULT_CORRUPTIONS, type Corruption } from './eval/corruptions.js';
import { fitPca, projectPca } from './eval/pca.js';
import { loadVisionData } from './data/sources.js';
import { createVisionEncoder, visionModelConfig, type VisionEncoderConfig } from './models/registry.js';
import { checkSameShape, degenerateDataWarnings } from './data-checks.js';
import { saveVisionModel } from './save.js';

/**
 * Baselines a run can train beside the Matryoshka model, by the same code:
 * `ff`: an independent model per dim; `svd`: the full-dim model's embedding projected on its
 * top-m principal directions; `rand`: the first m dims of the full-dim model (random feature
 * selection). `svd` and `rand` reuse FF's d-dim model when `ff` runs too.
 */
export const VISION_BASELINES = ['ff', 'svd', 'rand'] as const;
export type VisionBaseline = (typeof VISION_BASELINES)[number];

export interface VisionFitOptions {
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

/** An encoder without weights that passes fixed features through: heads on SVD / first-m features. */
function featureEncoder(dim: number): Encoder<tf.Tensor> {
  return {
    config: { architecture: 'features', embeddingDim: dim },
    embeddingDim: dim,
    encode: (input) => tf.reshape(input, [input.shape[0]!, dim]) as tf.Tensor2D,
    variables: () => new Map(),
    dispose: () => undefined,
  };
}

function featuresDataset(matrix: EmbeddingMatrix, labels: Int32Array, numClasses: number): ArrayDataset {
  return { inputs: matrix.data, exampleShape: [matrix.dim], labels, count: matrix.rows, numClasses };
}

/** Per-dim head top-1 and retrieval metrics from precomputed embeddings. */
async function scoreEmbeddings(
  run: Pick<ClassifierRun, 'head'>,
  trainEmb: EmbeddingMatrix,
  train: ArrayDataset,
  testEmb: EmbeddingMatrix,
  test: ArrayDataset,
  dims: readonly number[],
  protocol: { maxQueries: number; center: boolean },
): Promise<DimRow[]> {
  const { maxQueries, center } = protocol;
  const top1 = await headTop1(run.head, testEmb, test.labels, dims);
  const queries = headOf(test, maxQueries);
  const retrieval = await retrievalMetrics({
    database: trainEmb,
    databaseLabels: train.labels,
    queries: { data: testEmb.data.subarray(0, queries.count * testEmb.dim), rows: queries.count, dim: testEmb.dim },
    queryLabels: queries.labels,
    dims,
    center,
  });
  return dims.map((dim, j) => ({
    dim,
    top1: top1[j]!,
    nnTop1: retrieval[j]!.nnTop1,
    map10: retrieval[j]!.map10,
    recall: retrieval[j]!.recall,
  }));
}

/** Height, width and channels of the images a vision encoder reads: they come from the data. */
export interface VisionInputShape {
  height: number;
  width: number;
  channels: number;
}

function encoderOverrides(model: string, embeddingDim: number, split: VisionInputShape): Partial<VisionEncoderConfig> {
  const family = visionModelConfig(model).family;
  if (model === 'mlp') return { embeddingDim, inputDim: split.height * split.width * split.channels };
  if (family === 'vit') {
    if (split.height !== split.width)
      throw new MrlError(
        'invalid-argument',
        `${model} needs square images, the data has ${split.height}x${split.width}.`,
      );
    return { embeddingDim, inputChannels: split.channels, imageSize: split.height };
  }
  return { embeddingDim, inputChannels: split.channels };
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
  for (const c of options.compare) {
    if (!(VISION_BASELINES as readonly string[]).includes(c)) {
      throw new MrlError(
        'invalid-argument',
        `unknown baseline '${String(c)}'.`,
        `Known baselines: ${VISION_BASELINES.join(', ')}.`,
      );
    }
  }
  if (options.createEncoder === undefined) visionModelConfig(options.model); // unknown names fail before the data loads
  const data = await loadVisionData({
    data: options.data,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.imageSize === undefined ? {} : { imageSize: options.imageSize }),
    ...(options.channels === undefined ? {} : { channels: options.channels }),
    ...(options.testFraction === undefined ? {} : { testFraction: options.testFraction }),
    ...(options.strict === undefined ? {} : { strict: options.strict }),
    ...(options.augment === undefined ? {} : { augment: options.augment }),
    seed: context.seed,
    warn: context.log,
  });
  // Training examples used: all, or the first --train-limit (folders: in a seeded order).
  const trainCount = Math.min(options.trainLimit ?? data.trainCount, data.trainCount);
  const train = headOf(data.train, Math.min(trainCount, data.train.count));
  const test = headOf(data.test, options.testLimit ?? data.test.count);
  if (test.count === 0 || train.count === 0) {
    throw new MrlError(
      'invalid-argument',
      `${data.name}: the ${train.count === 0 ? 'training' : 'test'} split is empty.`,
      'Raise --train-limit / --test-limit, or add images.',
    );
  }
  // Folders stream augmented batches from disk over every training image (or the first --train-limit).
  const trainBatches =
    data.trainBatches === undefined
      ? undefined
      : trainCount === data.trainCount
        ? data.trainBatches
        : { size: trainCount, batch: (indices: Int32Array) => data.trainBatches!.batch(indices) };
  const [height, width, channels] = train.exampleShape as [number, number, number];
  const inputShape: VisionInputShape = { height, width, channels };
  await writeFileAtomically(
    join(context.runDir, 'labels.json'),
    `${JSON.stringify({ data: data.name, classNames: data.classNames, ...(data.transform === undefined ? {} : { transform: data.transform }) }, null, 2)}\n`,
  );
  const retrieval = { maxQueries: options.maxQueries ?? 2000, center: options.centerRetrieval ?? true };
  context.log(
    `data: ${data.name}, ${trainCount} train${train.count < trainCount ? ` (${train.count} decoded for 1-NN and SVD)` : ''} / ${test.count} test images of ${height}x${width}x${channels}, ${train.numClasses} classes`,
  );
  checkSameShape(train.exampleShape, test.exampleShape, data.name);
  for (const warning of degenerateDataWarnings(train, test)) context.log(`warning: ${warning}`);
  const { dims } = resolveNesting({
    embeddingDim: options.embeddingDim,
    ...(options.dims === undefined ? {} : { dims: options.dims }),
    ...(options.minDim === undefined ? {} : { minDim: options.minDim }),
  });
  const d = options.embeddingDim;
  const trainerFor = (label: string): TrainerOptions => ({
    epochs: options.epochs,
    batchSize: options.batchSize,
    seed: context.seed,
    optimizer: options.optimizer,
    ...(options.warmupSteps === undefined ? {} : { warmupSteps: options.warmupSteps }),
    ...(options.clipNorm === undefined ? {} : { clipNorm: options.clipNorm }),
    checkpoint: {
      dir: join(context.runDir, 'checkpoints', label),
      every: options.checkpointEvery ?? 500,
      ...(context.keepCheckpoints === undefined ? {} : { keep: context.keepCheckpoints }),
    },
    resume: context.resume,
    ...(context.fromCheckpoint === undefined ? {} : { fromCheckpoint: context.fromCheckpoint }),
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event) => context.onEvent?.(event, label),
  });
  const encoderFor = (m: number): Encoder<tf.Tensor> =>
    options.createEncoder?.(m, inputShape) ??
    createVisionEncoder(options.model, encoderOverrides(options.model, m, inputShape), createRandom(context.seed, 4));

  /** Trains (or, resuming, reloads from its final checkpoint) one model of the run: `mrl` or `ff-<m>`. */
  const trainModel = (label: string): Promise<ClassifierRun> => {
    const mrl = label === 'mrl';
    const m = mrl ? d : Number(label.slice('ff-'.length));
    return trainClassifier({
      encoder: encoderFor(m),
      train,
      dims: mrl ? dims : [m],
      ...(mrl && options.weights !== undefined ? { weights: options.weights } : {}),
      head: mrl ? options.head : 'separate',
      trainer: trainerFor(label),
      ...(trainBatches === undefined ? {} : { batches: trainBatches }),
    });
  };

  if (options.trainOnly !== undefined) {
    const known = ['mrl', ...dims.map((m) => `ff-${m}`)];
    for (const label of options.trainOnly) {
      if (!known.includes(label))
        throw new MrlError(
          'invalid-argument',
          `trainOnly names '${label}', which this run does not train.`,
          `Known models: ${known.join(', ')}.`,
        );
    }
    for (const label of options.trainOnly) {
      const run = await trainModel(label);
      run.encoder.dispose();
      tf.dispose([...run.head.variables().values()]);
    }
    return {
      title: `${data.name}, ${options.model}, d=${d}: trained ${options.trainOnly.join(', ')}`,
      table: '',
      metrics: { trained: options.trainOnly },
    };
  }

  const ffPlan = options.compare.includes('ff')
    ? (options.ffDims === undefined ? dims : dims.filter((x) => options.ffDims!.includes(x))).map((m) => `ff-${m}`)
    : [];
  const fixedPlan = [
    ...(options.compare.includes('svd') || options.compare.includes('rand')
      ? ffPlan.includes(`ff-${d}`)
        ? []
        : [`ff-${d}`]
      : []),
    ...(options.compare.includes('svd') ? ['svd-heads'] : []),
    ...(options.compare.includes('rand') ? ['rand-heads'] : []),
  ];
  context.onPlan?.(['mrl', ...ffPlan, ...fixedPlan]);
  const mrlRun = await trainModel('mrl');
  const mrlTrainEmb = await embedArrays(mrlRun.encoder, train);
  const mrlTestEmb = await embedArrays(mrlRun.encoder, test);
  const mrlRows = await scoreEmbeddings(mrlRun, mrlTrainEmb, train, mrlTestEmb, test, dims, retrieval);

  const ffRows = new Map<number, DimRow>();
  let fullRun: ClassifierRun | undefined;
  if (options.compare.includes('ff')) {
    for (const m of options.ffDims === undefined ? dims : dims.filter((x) => options.ffDims!.includes(x))) {
      const run = await trainModel(`ff-${m}`);
      const [row] = await scoreEmbeddings(
        run,
        await embedArrays(run.encoder, train),
        train,
        await embedArrays(run.encoder, test),
        test,
        [m],
        retrieval,
      );
      ffRows.set(m, row!);
      if (m === d) fullRun = run;
      else run.encoder.dispose();
    }
  }

  // SVD and random feature selection both start from a model trained with the full-dim loss only.
  const svdRows = new Map<number, DimRow>();
  const randRows = new Map<number, DimRow>();
  if (options.compare.includes('svd') || options.compare.includes('rand')) {
    fullRun ??= await trainModel(`ff-${d}`);
    const fullTrain = await embedArrays(fullRun.encoder, train);
    const fullTest = await embedArrays(fullRun.encoder, test);
    const fixedFeatureRows = async (
      trainFeatures: EmbeddingMatrix,
      testFeatures: EmbeddingMatrix,
      label: string,
    ): Promise<DimRow[]> => {
      // A linear head per prefix on the frozen features, trained by the same loop.
      const run = await trainClassifier({
        encoder: featureEncoder(d),
        train: featuresDataset(trainFeatures, train.labels, train.numClasses),
        dims,
        head: 'separate',
        trainer: trainerFor(label),
      });
      const rows = await scoreEmbeddings(run, trainFeatures, train, testFeatures, test, dims, retrieval);
      tf.dispose([...run.head.variables().values()]);
      return rows;
    };
    if (options.compare.includes('svd')) {
      const pca = fitPca(fullTrain);
      for (const row of await fixedFeatureRows(projectPca(pca, fullTrain), projectPca(pca, fullTest), 'svd-heads'))
        svdRows.set(row.dim, row);
    }
    if (options.compare.includes('rand')) {
      for (const row of await fixedFeatureRows(fullTrain, fullTest, 'rand-heads')) randRows.set(row.dim, row);
    }
  }
  fullRun?.encoder.dispose();

  type Row = DimRow & { ff?: DimRow | undefined; svd?: DimRow | undefined; rand?: DimRow | undefined };
  const rows: Row[] = mrlRows.map((r) => ({
    ...r,
    ff: ffRows.get(r.dim),
    svd: svdRows.get(r.dim),
    rand: randRows.get(r.dim),
  }));
  const baselineColumns = (key: 'ff' | 'svd' | 'rand', name: string, present: boolean) =>
    present
      ? [
          { header: `${name} top-1 %`, value: (r: Row) => percent(r[key]?.top1) },
          { header: `${name} 1-NN %`, value: (r: Row) => percent(r[key]?.nnTop1) },
        ]
      : [];
  const table = formatTable(rows, [
    { header: 'dim', value: (r) => String(r.dim) },
    { header: 'MRL top-1 %', value: (r) => percent(r.top1) },
    { header: 'MRL 1-NN %', value: (r) => percent(r.nnTop1) },
    { header: 'MRL mAP@10', value: (r) => r.map10 },
    ...baselineColumns('ff', 'FF', ffRows.size > 0),
    ...(ffRows.size > 0
      ? [
          {
            header: 'MRL-FF',
            value: (r: Row) => (r.ff?.top1 === undefined ? undefined : (100 * (r.top1! - r.ff.top1)).toFixed(2)),
          },
        ]
      : []),
    ...baselineColumns('svd', 'SVD', svdRows.size > 0),
    ...baselineColumns('rand', 'Rand', randRows.size > 0),
  ]);

  // Robustness: the MRL model on corrupted copies of the test images (fixed seed per corruption).
  const corruptions =
    options.robustness === true
      ? DEFAULT_CORRUPTIONS
      : options.robustness === false || options.robustness === undefined
        ? []
        : options.robustness;
  const robustness: { corruption: string; rows: DimRow[] }[] = [];
  for (const corruption of corruptions) {
    const shape = [test.count, ...test.exampleShape] as [number, number, number, number];
    const corrupted: ArrayDataset = { ...test, inputs: corruptImages(test.inputs, shape, corruption, context.seed) };
    const corruptedEmb = await embedArrays(mrlRun.encoder, corrupted);
    robustness.push({
      corruption: `${corruption.name}:${corruption.severity}`,
      rows: await scoreEmbeddings(mrlRun, mrlTrainEmb, train, corruptedEmb, corrupted, dims, retrieval),
    });
  }
  let robustnessTable = '';
  if (robustness.length > 0) {
    robustnessTable = `\n\nMRL on corrupted test images (top-1 % / 1-NN %):\n${formatTable(
      dims.map((dim, j) => ({ dim, j })),
      [
        { header: 'dim', value: (r) => String(r.dim) },
        { header: 'clean', value: (r) => `${percent(mrlRows[r.j]!.top1)} / ${percent(mrlRows[r.j]!.nnTop1)}` },
        ...robustness.map((c) => ({
          header: c.corruption,
          value: (r: { j: number }) => `${percent(c.rows[r.j]!.top1)} / ${percent(c.rows[r.j]!.nnTop1)}`,
        })),
      ],
    )}`;
  }

  if (options.saveModel !== false) {
    const dir = join(context.runDir, 'model');
    await saveVisionModel(dir, mrlRun.encoder, { dims: dims.join(','), head: options.head });
    context.log(`model: ${dir}`);
  }
  const visionMetrics = [
    { key: 'top1', header: 'top-1 %', kind: 'percent' },
    { key: 'nnTop1', header: '1-NN %', kind: 'percent' },
    { key: 'map10', header: 'mAP@10', kind: 'score' },
  ] as const;
  const asSeries = (key: string, label: string, source: Iterable<DimRow>): TableSeries => ({
    key,
    label,
    rows: [...source].map((r) => ({ dim: r.dim, values: { top1: r.top1, nnTop1: r.nnTop1, map10: r.map10 } })),
  });
  const runTable: RunTable = {
    data: data.name,
    model: options.model,
    task: `test set, ${test.count} images (1-NN and mAP@10 search ${train.count} training images)`,
    embeddingDim: d,
    metrics: visionMetrics,
    series: [
      asSeries('mrl', options.head === 'shared' ? 'MRL-E' : 'MRL', mrlRows),
      ...(ffRows.size > 0 ? [asSeries('ff', 'FF', ffRows.values())] : []),
      ...(svdRows.size > 0 ? [asSeries('svd', 'SVD', svdRows.values())] : []),
      ...(randRows.size > 0 ? [asSeries('rand', 'Rand', randRows.values())] : []),
    ],
    references: [{ label: 'majority class', values: { top1: majorityClass(train.labels, test.labels).accuracy } }],
    ...(robustnessTable === '' ? {} : { notes: [robustnessTable.trim()] }),
  };
  const metrics = {
    table: runTable,
    model: options.model,
    data: options.data,
    head: options.head,
    dims,
    trainCount,
    testCount: test.count,
    mrl: mrlRows,
    ff: Object.fromEntries(ffRows),
    svd: Object.fromEntries(svdRows),
    rand: Object.fromEntries(randRows),
    robustness,
  };
  await writeFileAtomically(join(context.runDir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  mrlRun.encoder.dispose();
  tf.dispose([...mrlRun.head.variables().values()]);
  return {
    title: `${data.name}, ${options.model}, d=${d}, ${options.head === 'shared' ? 'MRL-E' : 'MRL'} (test set)`,
    table: table + robustnessTable,
    metrics,
    runTable,
  };
}

import {
  createRandom,
  embedArrays,
  featureEncoder,
  headOf,
  labelDim,
  MrlError,
  pcaProject,
  retrievalMetrics,
  trainClassifier,
  trainerOptions,
  headTop1,
  type ArrayDataset,
  type ClassifierRun,
  type DimRow,
  type EmbeddingMatrix,
  type Encoder,
  type RunContext,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import type { VisionFitOptions, VisionInputShape } from '../fit.js';
import { createVisionEncoder, visionModelConfig, type VisionEncoderConfig } from '../models/registry.js';
import type { VisionRunData } from './prepare.js';

/** Trains and scores the models of one vision run; built once per run. */
export interface VisionTask {
  options: VisionFitOptions;
  context: RunContext;
  data: VisionRunData;
  retrieval: { maxQueries: number; center: boolean };
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

function encoderFor(task: VisionTask, m: number): Encoder<tf.Tensor> {
  const { options, context, data } = task;
  return (
    options.createEncoder?.(m, data.input) ??
    createVisionEncoder(options.model, encoderOverrides(options.model, m, data.input), createRandom(context.seed, 4))
  );
}

/** The Trainer's options of one model of a vision run (checkpoints every 500 steps by default). */
export function visionTrainer(task: VisionTask, label: string) {
  const { options } = task;
  return trainerOptions(
    options,
    { epochs: options.epochs, batchSize: options.batchSize, lr: 1e-3, checkpointEvery: 500 },
    task.context,
    label,
  );
}

/** Trains (or, resuming, reloads from its final checkpoint) one model of the run: `mrl` or `ff-<m>`. */
export function trainVisionModel(task: VisionTask, label: string): Promise<ClassifierRun> {
  const { options, data } = task;
  const mrl = label === 'mrl';
  const m = labelDim(label, options.embeddingDim);
  return trainClassifier({
    encoder: encoderFor(task, m),
    train: data.train,
    dims: mrl ? data.dims : [m],
    ...(mrl && options.weights !== undefined ? { weights: options.weights } : {}),
    head: mrl ? options.head : 'separate',
    ...(options.headLrScale === undefined ? {} : { headLrScale: options.headLrScale }),
    trainer: visionTrainer(task, label),
    ...(data.trainBatches === undefined ? {} : { batches: data.trainBatches }),
  });
}

/** Per-dim head top-1 and retrieval metrics from precomputed embeddings. */
export async function scoreEmbeddings(
  task: VisionTask,
  run: Pick<ClassifierRun, 'head'>,
  trainEmb: EmbeddingMatrix,
  testEmb: EmbeddingMatrix,
  dims: readonly number[],
  test: ArrayDataset = task.data.test,
): Promise<DimRow[]> {
  const { maxQueries, center } = task.retrieval;
  const train = task.data.train;
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

/** A trained model's embeddings of the training (1-NN database) and test images. */
export async function embedSplits(
  run: ClassifierRun,
  data: VisionRunData,
): Promise<[EmbeddingMatrix, EmbeddingMatrix]> {
  return [await embedArrays(run.encoder, data.train), await embedArrays(run.encoder, data.test)];
}

export function disposeRun(run: ClassifierRun): void {
  run.encoder.dispose();
  tf.dispose([...run.head.variables().values()]);
}

/** Rows of a linear head per prefix trained, by the same loop, on frozen features (SVD or first-m). */
async function fixedFeatureRows(
  task: VisionTask,
  features: [EmbeddingMatrix, EmbeddingMatrix],
  label: string,
): Promise<DimRow[]> {
  const { data, options } = task;
  const [trainFeatures, testFeatures] = features;
  const run = await trainClassifier({
    encoder: featureEncoder(options.embeddingDim),
    train: {
      inputs: trainFeatures.data,
      exampleShape: [trainFeatures.dim],
      labels: data.train.labels,
      count: trainFeatures.rows,
      numClasses: data.train.numClasses,
    },
    dims: data.dims,
    head: 'separate',
    // The probes are linear heads too: the same learning-rate multiple as MRL's and FF's heads.
    ...(options.headLrScale === undefined ? {} : { headLrScale: options.headLrScale }),
    trainer: visionTrainer(task, label),
  });
  const rows = await scoreEmbeddings(task, run, trainFeatures, testFeatures, data.dims);
  tf.dispose([...run.head.variables().values()]);
  return rows;
}

/**
 * Random features (`untrained`): the d-dim encoder at its random initialisation, the same
 * weights the MRL model starts from (same seed), never trained; a linear head per prefix on its
 * frozen features, and 1-NN / mAP@10 on its prefixes, as SVD and truncation get.
 */
export async function untrainedRows(task: VisionTask): Promise<Map<number, DimRow>> {
  const encoder = encoderFor(task, task.options.embeddingDim);
  const features: [EmbeddingMatrix, EmbeddingMatrix] = [
    await embedArrays(encoder, task.data.train),
    await embedArrays(encoder, task.data.test),
  ];
  encoder.dispose();
  const rows = new Map<number, DimRow>();
  for (const row of await fixedFeatureRows(task, features, 'untrained-heads')) rows.set(row.dim, row);
  return rows;
}

/**
 * SVD and truncation (`rand`) from the d-dim model trained without MRL: heads on its PCA
 * projection and on its first m dims.
 */
export async function fullModelBaselines(
  task: VisionTask,
  fullRun: ClassifierRun,
): Promise<{ svd: Map<number, DimRow>; rand: Map<number, DimRow> }> {
  const compare = task.options.compare;
  const [fullTrain, fullTest] = await embedSplits(fullRun, task.data);
  const svd = new Map<number, DimRow>();
  const rand = new Map<number, DimRow>();
  if (compare.includes('svd')) {
    // The whole decoded training sample fits the PCA (no row cap), as before.
    const projected = pcaProject(fullTrain, [fullTrain, fullTest], Number.MAX_SAFE_INTEGER) as [
      EmbeddingMatrix,
      EmbeddingMatrix,
    ];
    for (const row of await fixedFeatureRows(task, projected, 'svd-heads')) svd.set(row.dim, row);
  }
  if (compare.includes('rand')) {
    for (const row of await fixedFeatureRows(task, [fullTrain, fullTest], 'rand-heads')) rand.set(row.dim, row);
  }
  return { svd, rand };
}

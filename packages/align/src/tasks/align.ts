import { join } from 'node:path';
import {
  createRandom,
  labelDim,
  MatryoshkaLoss,
  pcaProject,
  Trainer,
  trainerOptions,
  type EmbeddingMatrix,
  type RunContext,
  type TrainerOptions,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import { createDualEncoder, type DualEncoderOptions } from '../di.js';
import type { Embeddings } from '../evaluate.js';
import type { AlignFitOptions } from '../fit.js';
import { ClipContrastiveObjective } from '../loss.js';
import { AlignModel, type AlignBatch, type DualEncoder } from '../model.js';
import { saveAlignModel } from '../save.js';
import { imageTensor, tokenTensor } from '../tensors.js';
import { embedAlignSplit, scoreAlign, type AlignEmbeddings, type AlignEvaluation } from './evaluate.js';
import type { Prepared } from './prepare.js';

/** One align run: its settings, data and the dual encoder every model of the run starts from. */
export interface AlignTask {
  options: AlignFitOptions;
  context: RunContext;
  data: Prepared & { dataName: string };
  base: DualEncoderOptions;
  dims: number[];
  weights: number[];
  maxLength: number;
  imageSize: number;
}

/** A trained model's scores, with its test (and, for the model without MRL, training-sample) embeddings. */
export interface AlignModelResult extends AlignEvaluation {
  steps: number;
  seconds: number;
  /** Test embeddings; the model without MRL also keeps its training sample for the SVD baseline's PCA. */
  test: AlignEmbeddings & { pcaFit?: Embeddings };
}

/** The Trainer's options of one model: AdamW 3e-3, weight decay 0.01, clip 2, warm-up a tenth of the steps up to 20. */
function alignTrainer(task: AlignTask, label: string): TrainerOptions {
  const { options, data } = task;
  const batchSize = options.batchSize ?? 128;
  const totalSteps =
    options.steps ?? Math.max(1, Math.round((options.epochs ?? 4) * Math.ceil(data.train.length / batchSize)));
  return trainerOptions(
    options,
    {
      epochs: 4,
      batchSize: 128,
      lr: 3e-3,
      weightDecay: 0.01,
      warmupSteps: Math.min(20, Math.floor(totalSteps / 10)),
      clipNorm: 2,
      checkpointEvery: 1_000_000,
    },
    task.context,
    label,
  );
}

function batches(task: AlignTask) {
  const { data, maxLength } = task;
  return {
    size: data.train.length,
    batch: (indices: Int32Array): AlignBatch => {
      const images = imageTensor(data.trainPixels, indices);
      const tokens = tokenTensor(
        Array.from(indices, (i) => data.trainIds[i]!),
        maxLength,
        data.tokenizer.special,
      );
      return {
        images,
        tokens,
        size: indices.length,
        dispose: () => tf.dispose([images, tokens.ids, tokens.attentionMask]),
      };
    },
  };
}

/** The dual encoder of one model of the run, its shared space `m` wide. */
function encoderFor(task: AlignTask, m: number): DualEncoder {
  const { base, options, data, maxLength, imageSize } = task;
  return createDualEncoder(
    {
      ...base,
      embeddingDim: m,
      textOverrides: {
        ...base.textOverrides,
        ...options.textOverrides,
        vocabSize: data.tokenizer.vocabSize,
        maxPositions: Math.max(maxLength, 32),
      },
      visionOverrides: { ...base.visionOverrides, ...(base.vision.startsWith('vit') ? { imageSize } : {}) },
    },
    createRandom(task.context.seed, 4),
  );
}

/**
 * Test-split embeddings of a dual encoder; with `gallery: 'all'` also every training pair's image
 * and caption, the candidates that make retrieval run over the whole collection.
 */
async function embedTest(task: AlignTask, encoder: DualEncoder): Promise<AlignEmbeddings> {
  const { data, options } = task;
  const test = await embedAlignSplit(
    encoder,
    { pixels: data.testPixels, ids: data.testIds, labels: data.test.map((p) => p.label) },
    data.tokenizer,
    {
      maxLength: task.maxLength,
      ...(options.promptTemplate === undefined ? {} : { promptTemplate: options.promptTemplate }),
    },
  );
  if (options.gallery !== 'all') return test;
  const train = await embedAlignSplit(encoder, { pixels: data.trainPixels, ids: data.trainIds }, data.tokenizer, {
    maxLength: task.maxLength,
  });
  return { ...test, gallery: { images: train.images, texts: train.texts } };
}

/**
 * Trains (or, resuming, reloads from its final checkpoint) one model of the run, `mrl` (the
 * Matryoshka loss on every nesting dim, saved to `<runDir>/model`) or `ff-<m>` (an m-dim shared
 * space, the loss at m only), and scores it on the test split at `scoreDims`.
 */
export async function trainAlignModel(task: AlignTask, label: string): Promise<AlignModelResult> {
  const { context, dims } = task;
  const d = task.base.embeddingDim;
  const m = labelDim(label, d);
  const trainDims = label === 'mrl' ? dims : [m];
  const encoder = encoderFor(task, m);
  const objective = new ClipContrastiveObjective();
  const matryoshka = new MatryoshkaLoss(objective, {
    embeddingDim: m,
    dims: trainDims,
    weights: label === 'mrl' ? task.weights : [1],
    ...(task.options.dimsPerStep === undefined ? {} : { dimsPerStep: task.options.dimsPerStep }),
  });
  const model = new AlignModel(encoder, matryoshka);
  const params = [...model.variables().values()].reduce((s, v) => s + (v.trainable ? v.size : 0), 0);
  context.log(
    `${label}: ${encoder.config.architecture}, ${(params / 1e6).toFixed(2)}M parameters, loss on dims ${trainDims.join(', ')}`,
  );
  const t0 = performance.now();
  const result = await new Trainer(model, batches(task), alignTrainer(task, label)).fit();
  const seconds = (performance.now() - t0) / 1000;
  const test = await embedTest(task, encoder);
  const logitScale = await objective.scaleValue();
  // A resumed model whose training was already complete runs no step (its final loss is NaN).
  const trained = Number.isFinite(result.finalLoss)
    ? `${result.steps} steps in ${seconds.toFixed(0)} s, final loss ${result.finalLoss.toFixed(3)}`
    : `already trained (${result.steps} steps, loaded from its checkpoint)`;
  context.log(`${label}: ${trained}, logit scale ${logitScale.toFixed(1)}`);
  if (label === 'mrl') {
    const modelDir = join(context.runDir, 'model');
    await saveAlignModel(modelDir, encoder, join(context.runDir, 'tokenizer'), dims, {
      image_size: task.imageSize,
      max_length: task.maxLength,
    });
    context.log(`mrl: model -> ${modelDir}`);
  }
  const pcaFit =
    label === `ff-${d}` && task.options.compare?.includes('svd') ? await pcaSample(task, encoder) : undefined;
  encoder.dispose();
  objective.dispose();
  const scored = scoreAlign(test, label === 'mrl' || m === d ? dims : [m]);
  return {
    ...scored,
    logitScale,
    steps: result.steps,
    seconds,
    test: pcaFit === undefined ? test : { ...test, pcaFit },
  };
}

/**
 * Random features (`untrained`): the d-wide dual encoder at its random initialisation, the
 * weights the MRL model starts from (same seed), never trained, scored at every nesting dim like
 * MRL's prefixes.
 */
export async function untrainedScores(task: AlignTask): Promise<ReturnType<typeof scoreAlign>> {
  const encoder = encoderFor(task, task.base.embeddingDim);
  const test = await embedTest(task, encoder);
  encoder.dispose();
  return scoreAlign(test, task.dims);
}

/** Up to 2,000 training pairs' image and caption embeddings, stacked: what the SVD baseline's PCA is fitted on. */
async function pcaSample(task: AlignTask, encoder: DualEncoder): Promise<Embeddings> {
  const { data } = task;
  const n = Math.min(2_000, data.train.length);
  const sample = await embedAlignSplit(
    encoder,
    { pixels: { ...data.trainPixels, count: n }, ids: data.trainIds.slice(0, n) },
    data.tokenizer,
    { maxLength: task.maxLength },
  );
  const dim = sample.images.dim;
  const stacked = new Float32Array(2 * n * dim);
  stacked.set(sample.images.data);
  stacked.set(sample.texts.data, n * dim);
  return { data: stacked, rows: 2 * n, dim };
}

/**
 * The SVD baseline: the model without MRL's image, caption, gallery and prompt embeddings projected on
 * the principal directions of its training embeddings (images and captions together, one shared
 * space), then scored at every nesting dim like MRL's prefixes.
 */
export function svdScores(task: AlignTask, full: AlignModelResult['test']): ReturnType<typeof scoreAlign> {
  const fitOn = full.pcaFit ?? stack(full.images, full.texts);
  const matrices: EmbeddingMatrix[] = [
    full.images,
    full.texts,
    ...(full.gallery === undefined ? [] : [full.gallery.images, full.gallery.texts]),
    ...(full.prompts === undefined ? [] : [full.prompts]),
  ];
  const projected = pcaProject(fitOn, matrices);
  const [images, texts] = projected;
  const gallery = full.gallery === undefined ? undefined : { images: projected[2]!, texts: projected[3]! };
  const prompts = full.prompts === undefined ? undefined : projected[projected.length - 1];
  return scoreAlign(
    {
      ...full,
      images: images!,
      texts: texts!,
      ...(gallery === undefined ? {} : { gallery }),
      ...(prompts === undefined ? {} : { prompts }),
    },
    task.dims,
  );
}

function stack(a: Embeddings, b: Embeddings): Embeddings {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { data, rows: a.rows + b.rows, dim: a.dim };
}

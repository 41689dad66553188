import * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../encoder.js';
import { embedDataset, type EmbeddingMatrix } from '../evaluate/embeddings.js';
import { MrlError } from '../errors.js';
import { headTop1, retrievalMetrics } from '../evaluate/metrics.js';
import { SeparateHeads, SharedHead, type PrefixHead } from '../heads.js';
import { MatryoshkaLoss } from '../matryoshka-loss.js';
import { MatryoshkaModel } from '../model.js';
import { ClassificationObjective } from '../objective.js';
import { createRandom } from '../rng.js';
import { Trainer, type BatchSource, type FitResult, type TrainerOptions } from '../trainer.js';
import type { SupervisedBatch } from '../model.js';
import type { ClassTarget } from '../objective.js';
import { checkArrayDataset, classificationBatches, gatherRows, headOf, type ArrayDataset } from './array-dataset.js';

/** `separate`: one linear head per dim (MRL); `shared`: one sliced head (MRL-E). */
export type HeadKind = 'separate' | 'shared';

export interface ClassifierRun {
  encoder: Encoder<tf.Tensor>;
  head: PrefixHead;
  dims: readonly number[];
  fit: FitResult;
}

/**
 * Trains an encoder with a Matryoshka classification loss over `dims` (a single dim gives the
 * fixed-size baseline, trained by the same code).
 */
export async function trainClassifier(options: {
  encoder: Encoder<tf.Tensor>;
  train: ArrayDataset;
  dims: readonly number[];
  weights?: readonly number[];
  head: HeadKind;
  trainer: TrainerOptions;
  /**
   * The heads' learning rate as a multiple of the trainer's (default 1), through the trainer's
   * `lrScales`. Adam moves each weight by about lr a step, so a linear head over many classes
   * builds its margins slowly at the encoder's rate; on 300 glyph classes a scale of 10 took
   * MRL's 8-dim head from 1.4% to 12.9% top-1 at the same 405 steps (BENCHMARKS.md).
   */
  headLrScale?: number;
  /**
   * Training batches to use instead of `train`'s rows (e.g. images decoded with augmentation as
   * they are needed); `train` still gives the class count and is what evaluation embeds.
   */
  batches?: BatchSource<SupervisedBatch<tf.Tensor, ClassTarget>>;
}): Promise<ClassifierRun> {
  checkArrayDataset(options.train, 'training data');
  const headLrScale = options.headLrScale ?? 1;
  if (!(headLrScale > 0) || !Number.isFinite(headLrScale)) {
    throw new MrlError(
      'invalid-config',
      `headLrScale must be a finite number > 0, got ${options.headLrScale}.`,
      "Pass the factor for the heads' learning rate, e.g. 10 (1 trains them at the encoder's rate).",
    );
  }
  const d = options.encoder.embeddingDim;
  const random = createRandom(options.trainer.seed, 3);
  const head =
    options.head === 'shared'
      ? new SharedHead(d, options.train.numClasses, random)
      : new SeparateHeads(d, options.train.numClasses, options.dims, random);
  const loss = new MatryoshkaLoss(new ClassificationObjective(head), {
    embeddingDim: d,
    dims: options.dims,
    ...(options.weights === undefined ? {} : { weights: options.weights }),
  });
  const model = new MatryoshkaModel(options.encoder, loss);
  const trainerOptions: TrainerOptions =
    headLrScale === 1
      ? options.trainer
      : {
          ...options.trainer,
          lrScales: new Map([
            ...(options.trainer.lrScales ?? new Map<string, number>()),
            ...[...model.variables().keys()]
              .filter((name) => name.startsWith('objective/'))
              .map((name): [string, number] => [name, headLrScale * (options.trainer.lrScales?.get(name) ?? 1)]),
          ]),
        };
  const trainer = new Trainer(model, options.batches ?? classificationBatches(options.train), trainerOptions);
  const fit = await trainer.fit();
  trainer.optimizer.dispose();
  return { encoder: options.encoder, head, dims: loss.dims, fit };
}

/** Per-dim quality of a classifier: head top-1 on the test set and label-based retrieval. */
export interface DimRow {
  dim: number;
  /** Top-1 of the trained linear head. */
  top1?: number;
  /** 1-NN top-1, test queries against the training set, cosine on the prefix. */
  nnTop1: number;
  map10: number;
  recall: Record<number, number>;
}

export async function embedArrays(
  encoder: Encoder<tf.Tensor>,
  data: ArrayDataset,
  batchSize = 1000,
): Promise<EmbeddingMatrix> {
  return embedDataset(encoder, data.count, (indices) => gatherRows(data, indices), { batchSize });
}

/**
 * Evaluates a trained classifier at each dim. Retrieval uses the first `maxQueries` test
 * examples as queries against the whole training set.
 */
export async function evaluateClassifier(options: {
  run: ClassifierRun;
  train: ArrayDataset;
  test: ArrayDataset;
  dims?: readonly number[];
  maxQueries?: number;
}): Promise<DimRow[]> {
  const dims = options.dims ?? options.run.dims;
  const trainEmb = await embedArrays(options.run.encoder, options.train);
  const testEmb = await embedArrays(options.run.encoder, options.test);
  const top1 = await headTop1(options.run.head, testEmb, options.test.labels, dims);
  const queries = headOf(options.test, options.maxQueries ?? 2000);
  const retrieval = await retrievalMetrics({
    database: trainEmb,
    databaseLabels: options.train.labels,
    queries: { data: testEmb.data.subarray(0, queries.count * testEmb.dim), rows: queries.count, dim: testEmb.dim },
    queryLabels: queries.labels,
    dims,
  });
  return dims.map((dim, j) => ({
    dim,
    top1: top1[j]!,
    nnTop1: retrieval[j]!.nnTop1,
    map10: retrieval[j]!.map10,
    recall: retrieval[j]!.recall,
  }));
}

import * as tf from '@tensorflow/tfjs';
import { resolveNesting } from '../dims.js';
import { MrlError } from '../errors.js';
import { l2Normalize } from '../losses.js';
import { MatryoshkaLoss } from '../matryoshka-loss.js';
import type { TrainModel } from '../model.js';
import { prefixVariables, type VariableMap } from '../module.js';
import { createRandom, type Random } from '../rng.js';
import { Trainer, type BatchSource, type FitResult, type TrainEvent } from '../trainer.js';
import { type AdaptorWeights, MatryoshkaAdaptor } from './adaptor.js';
import { defaultHidden } from './config.js';
import {
  DistillationObjective,
  type DistillationTarget,
  NeighbourDistributionObjective,
  PairwiseSimilarityObjective,
  RankingObjective,
  reconstructionLoss,
  similarityTarget,
  TopKSimilarityObjective,
} from './losses.js';
import { fitPca } from './pca.js';
import { checkRows, type Rows } from './rows.js';

/** Weights of the adaptor's loss terms; a term with weight 0 is not computed. */
export interface AdaptorLossWeights {
  /** Pairwise similarity preservation over all pairs of the batch (default 0.2). */
  pairwise?: number;
  /** Similarity preservation over each row's k nearest neighbours (default 10). */
  topK?: number;
  /** KL of each row's neighbour distribution, full vs prefix (`NeighbourDistributionObjective`; default 0). */
  neighbours?: number;
  /** Mean squared difference `f(e) - e` (default 0.1). */
  reconstruction?: number;
  /** Multiple-negatives ranking loss on (query, document) pairs, when pairs are given (default 1). */
  ranking?: number;
  /**
   * Listwise self-distillation on the pairs (`DistillationObjective`): every nesting dim below the
   * largest learns the largest prefix's softmax over the batch's documents (default 0: off).
   */
  distill?: number;
}

/**
 * Defaults from the Fashion-MNIST FF runs in the README: the local (top-k) term decides nearest
 * neighbour quality, the global pairwise term keeps the rest of the geometry; weighting the local
 * one 50x more gave the best 1-NN accuracy at small prefixes.
 */
export const DEFAULT_LOSS_WEIGHTS: Required<AdaptorLossWeights> = {
  pairwise: 0.2,
  topK: 10,
  neighbours: 0,
  reconstruction: 0.1,
  ranking: 1,
  distill: 0,
};

/** One training batch: original embeddings and, for the supervised loss, (query, document) pairs. */
export interface AdaptorBatch {
  embeddings: tf.Tensor2D;
  queries?: tf.Tensor2D;
  documents?: tf.Tensor2D;
  /** [P, d] with pairs that carry hard negatives: row i a hard negative of query i, a negative of every query. */
  negatives?: tf.Tensor2D;
  /** [P, P] with label pairs: 1 where document j (j != i) shares query i's label (see `RankingTarget`). */
  otherPositives?: tf.Tensor2D;
  size: number;
  dispose(): void;
}

export interface AdaptorModelOptions {
  /** Per-dim weights in the Matryoshka sums (default 1 each). */
  dimWeights?: readonly number[];
  lossWeights?: AdaptorLossWeights;
  /** Neighbours per row in the top-k loss (default 10). */
  k?: number;
  /** Inverse temperature of the ranking loss (default 20). */
  rankingScale?: number;
  /** Temperature of the neighbour-distribution term (default 0.05). */
  neighbourTemperature?: number;
  /** Temperature t of the distillation term: both softmaxes at `rankingScale / t` (default 1). */
  distillTemperature?: number;
}

/**
 * The adaptor's training loss, every term a `MatryoshkaLoss` over the same nesting dims:
 * `a * sum_m w_m pair(m) + b * sum_m w_m topk(m) + c * rec + r * sum_m w_m rank(m)`. The adaptor
 * runs once per batch and each prefix is a slice of its output. Parts are logged as
 * `pairwise/loss/<m>`, `topk/loss/<m>`, `ranking/loss/<m>`, `distill/loss/<m>` and `reconstruction`.
 * The distillation term (weight `distill`) runs over the nesting dims below the largest, its
 * teacher, with their dim weights: `+ s * sum_{m < d} w_m KL(p_d || q_m)`.
 */
export class AdaptorModel implements TrainModel<AdaptorBatch> {
  readonly pairwise: MatryoshkaLoss<{ similarity: tf.Tensor2D }>;
  readonly topK: MatryoshkaLoss<{ similarity: tf.Tensor2D; neighbours?: tf.Tensor2D }>;
  readonly neighbours: MatryoshkaLoss<{ similarity: tf.Tensor2D }>;
  readonly ranking: MatryoshkaLoss<{ documents: tf.Tensor2D }>;
  /** Over the nesting dims below the largest (the teacher); undefined while `distill` is 0. */
  readonly distill: MatryoshkaLoss<DistillationTarget> | undefined;
  readonly distillObjective: DistillationObjective;
  readonly lossWeights: Required<AdaptorLossWeights>;
  readonly k: number;

  constructor(
    readonly adaptor: MatryoshkaAdaptor,
    options: AdaptorModelOptions = {},
  ) {
    const nesting = {
      embeddingDim: adaptor.config.dim,
      dims: adaptor.config.dims,
      ...(options.dimWeights === undefined ? {} : { weights: options.dimWeights }),
    };
    this.pairwise = new MatryoshkaLoss(new PairwiseSimilarityObjective(), nesting);
    this.topK = new MatryoshkaLoss(new TopKSimilarityObjective(), nesting);
    this.neighbours = new MatryoshkaLoss(new NeighbourDistributionObjective(options.neighbourTemperature), nesting);
    this.ranking = new MatryoshkaLoss(new RankingObjective(options.rankingScale ?? 20), nesting);
    this.lossWeights = { ...DEFAULT_LOSS_WEIGHTS, ...options.lossWeights };
    for (const [name, w] of Object.entries(this.lossWeights)) {
      if (!(Number.isFinite(w) && w >= 0)) {
        throw new MrlError('invalid-argument', `the ${name} loss weight must be a finite number >= 0, got ${w}.`);
      }
    }
    this.distillObjective = new DistillationObjective(options.rankingScale ?? 20, options.distillTemperature);
    const dims = adaptor.config.dims;
    if (this.lossWeights.distill > 0) {
      if (dims.length < 2) {
        throw new MrlError(
          'invalid-argument',
          `the distillation term needs a nesting dim below the largest (its teacher), but the dims are [${dims.join(', ')}].`,
          `Add a smaller dim, e.g. [${Math.max(1, Math.floor(dims[0]! / 4))}, ${dims[0]}], or set the distill weight to 0.`,
        );
      }
      const weights = options.dimWeights ?? dims.map(() => 1);
      this.distill = new MatryoshkaLoss(this.distillObjective, {
        embeddingDim: adaptor.config.dim,
        dims: dims.slice(0, -1),
        weights: weights.slice(0, -1),
      });
    } else {
      this.distill = undefined;
    }
    this.k = options.k ?? 10;
    if (!Number.isInteger(this.k) || this.k < 1) {
      throw new MrlError('invalid-argument', `k (neighbours per row) must be a positive integer, got ${this.k}.`);
    }
  }

  loss(batch: AdaptorBatch): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const w = this.lossWeights;
    const parts: Record<string, tf.Scalar> = {};
    const terms: tf.Scalar[] = [];
    const adapted = this.adaptor.apply(batch.embeddings);
    // The adaptor's input (centred and/or rotated when its config says so): its cosines are the
    // targets, and the reconstruction term keeps f(e) = x + g(x) near x, i.e. g near zero.
    const input = this.adaptor.input(batch.embeddings);
    if (w.pairwise > 0 || w.topK > 0 || w.neighbours > 0) {
      const target = similarityTarget(input, w.topK > 0 ? this.k : undefined);
      for (const [name, loss, weight] of [
        ['pairwise', this.pairwise, w.pairwise],
        ['topk', this.topK, w.topK],
        ['neighbours', this.neighbours, w.neighbours],
      ] as const) {
        if (weight === 0) continue;
        const value = loss.compute(adapted, target);
        for (const [key, part] of Object.entries(value.parts)) parts[`${name}/${key}`] = part;
        terms.push(tf.mul(value.total, weight));
      }
      tf.dispose([target.similarity, target.neighbours]);
    }
    if (w.reconstruction > 0) {
      const rec = reconstructionLoss(adapted, input);
      parts.reconstruction = rec;
      terms.push(tf.mul(rec, w.reconstruction));
    }
    if ((w.ranking > 0 || this.distill !== undefined) && batch.queries !== undefined && batch.documents !== undefined) {
      // Label pairs: the queries are the batch rows themselves, already adapted.
      const queries = batch.queries === batch.embeddings ? adapted : this.adaptor.apply(batch.queries);
      // Hard negatives follow the positives: columns P.. of every query's softmax (`RankingTarget`).
      const documents =
        batch.negatives === undefined
          ? this.adaptor.apply(batch.documents)
          : this.adaptor.apply(tf.concat([batch.documents, batch.negatives], 0) as tf.Tensor2D);
      const target = {
        documents,
        ...(batch.otherPositives === undefined ? {} : { otherPositives: batch.otherPositives }),
      };
      if (w.ranking > 0) {
        const value = this.ranking.compute(queries, target);
        for (const [key, part] of Object.entries(value.parts)) parts[`ranking/${key}`] = part;
        terms.push(tf.mul(value.total, w.ranking));
      }
      if (this.distill !== undefined) {
        const teacher = this.distillObjective.teacher(queries, target, this.adaptor.config.dims.at(-1)!);
        const value = this.distill.compute(queries, { ...target, teacherLogProbabilities: teacher });
        for (const [key, part] of Object.entries(value.parts)) parts[`distill/${key}`] = part;
        terms.push(tf.mul(value.total, w.distill));
      }
    }
    if (terms.length === 0) {
      throw new MrlError(
        'invalid-argument',
        'every adaptor loss term has weight 0 (or only the ranking term is on and no pairs were given).',
        'Give the pairwise, top-k or reconstruction term a weight > 0, or pass (query, document) pairs.',
      );
    }
    // Without a centre or rotation the input is the batch's own tensor, which the batch disposes.
    if (input !== batch.embeddings) input.dispose();
    return { total: tf.addN(terms) as tf.Scalar, parts };
  }

  variables(): VariableMap {
    return prefixVariables({ adaptor: this.adaptor });
  }
}

/** The adaptor's weights after `step` training steps (see `FitAdaptorOptions.snapshotEvery`). */
export interface AdaptorSnapshot {
  step: number;
  weights: AdaptorWeights;
}

/**
 * The element-wise mean of the snapshots' weights from step `fromStep` on (stochastic weight
 * averaging, Izmailov et al., 2018): one adaptor whose prefixes vary less from seed to seed than
 * the last step's. The snapshots must come from one fit (same config, rotation and centre).
 *
 * @example
 * ```ts
 * const { snapshots, fit } = await fitAdaptor({ corpus, pairs, dims, epochs: 8, snapshotEvery: 50 });
 * const averaged = averageSnapshots(snapshots, fit.steps / 2); // the second half of training
 * ```
 */
export function averageSnapshots(snapshots: readonly AdaptorSnapshot[], fromStep = 0): AdaptorWeights {
  const chosen = snapshots.filter((s) => s.step >= fromStep);
  if (chosen.length === 0) {
    const last = snapshots.at(-1)?.step;
    throw new MrlError(
      'invalid-argument',
      `no adaptor snapshot at step ${fromStep} or later (${snapshots.length} snapshots${last === undefined ? '' : `, the last at step ${last}`}).`,
      'Lower the first averaged step, or take snapshots more often (snapshotEvery).',
    );
  }
  const first = chosen[0]!.weights;
  const mean = (pick: (w: AdaptorWeights) => Float32Array): Float32Array => {
    const sum = new Float64Array(pick(first).length);
    for (const { step, weights } of chosen) {
      const values = pick(weights);
      if (values.length !== sum.length || JSON.stringify(weights.config) !== JSON.stringify(first.config)) {
        throw new MrlError(
          'invalid-argument',
          `the adaptor snapshot of step ${step} does not match the first averaged one (another config).`,
          'Average snapshots of one fit only.',
        );
      }
      for (let i = 0; i < values.length; i++) sum[i]! += values[i]!;
    }
    return Float32Array.from(sum, (v) => v / chosen.length);
  };
  const averaged: AdaptorWeights = {
    config: { ...first.config, dims: [...first.config.dims] },
    w1: mean((w) => w.w1),
    b1: mean((w) => w.b1),
    w2: mean((w) => w.w2),
    b2: mean((w) => w.b2),
  };
  if (first.rotation !== undefined) averaged.rotation = first.rotation;
  if (first.mean !== undefined) averaged.mean = first.mean;
  return averaged;
}

/** (query, document) embedding pairs: row i of `documents` is the positive of row i of `queries`. */
export interface EmbeddingPairs {
  queries: Rows;
  documents: Rows;
  /**
   * Optional hard negatives: row i a document that is not query i's answer but close to it (e.g. a
   * gloss of the same topic). Each batch's hard negatives join its documents as negatives of every
   * query, as in multiple-negatives ranking with hard negatives (sentence-transformers' triplets).
   */
  negatives?: Rows;
}

/**
 * The `k` nearest other rows of every row by cosine similarity of the full embeddings [N, k],
 * nearest first (exact search: blocks of rows against all rows, O(N^2 d)).
 */
export async function nearestNeighbours(corpus: Rows, k: number, block = 1024): Promise<Int32Array> {
  const { rows, dim } = corpus;
  if (!Number.isInteger(k) || k < 1 || k >= rows) {
    throw new MrlError('invalid-argument', `neighbours per row must be an integer in [1, ${rows - 1}], got ${k}.`);
  }
  const out = new Int32Array(rows * k);
  const all = tf.tidy(() => tf.transpose(l2Normalize(tf.tensor2d(corpus.data, [rows, dim])))); // [d, N]
  try {
    for (let start = 0; start < rows; start += block) {
      const count = Math.min(block, rows - start);
      const top = tf.tidy(() => {
        const q = l2Normalize(tf.tensor2d(corpus.data.subarray(start * dim, (start + count) * dim), [count, dim]));
        return tf.topk(tf.matMul(q, all), k + 1).indices; // [count, k + 1], usually the row itself first
      });
      const idx = await top.data();
      top.dispose();
      for (let i = 0; i < count; i++) {
        let j = 0;
        for (let t = 0; t <= k && j < k; t++) {
          const n = idx[i * (k + 1) + t]!;
          if (n !== start + i) out[(start + i) * k + j++] = n;
        }
      }
    }
  } finally {
    all.dispose();
  }
  return out;
}

/**
 * Batches of corpus rows; with pairs, each batch also carries pairs (the batch's corpus indices
 * modulo the number of pairs, duplicates dropped, so every document in it is a true negative
 * of the other queries). With `neighbours` ([N, k] from {@link nearestNeighbours}), each drawn
 * row brings its k nearest neighbours into the batch, so the top-k loss sees the corpus' real
 * neighbourhoods rather than the nearest of a few hundred random rows.
 */
export function adaptorBatches(
  corpus: Rows,
  pairs?: EmbeddingPairs,
  neighbours?: { indices: Int32Array; k: number },
  labelPairs?: { labels: Int32Array; seed: number },
): BatchSource<AdaptorBatch> {
  // Label pairs: each batch row is a query, its document another corpus row of its class.
  const byClass = new Map<number, number[]>();
  if (labelPairs !== undefined) {
    labelPairs.labels.forEach((label, i) => {
      const members = byClass.get(label);
      if (members === undefined) byClass.set(label, [i]);
      else members.push(i);
    });
  }
  let draws = 0;
  const take = (m: Rows, indices: ArrayLike<number>): tf.Tensor2D => {
    const out = new Float32Array(indices.length * m.dim);
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!;
      out.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), i * m.dim);
    }
    return tf.tensor2d(out, [indices.length, m.dim]);
  };
  return {
    size: corpus.rows,
    batch(drawn) {
      let indices: ArrayLike<number> = drawn;
      if (neighbours !== undefined) {
        const set = new Set<number>();
        for (const a of drawn) {
          set.add(a);
          for (let j = 0; j < neighbours.k; j++) set.add(neighbours.indices[a * neighbours.k + j]!);
        }
        indices = [...set];
      }
      const embeddings = take(corpus, indices);
      if (labelPairs !== undefined) {
        const { labels } = labelPairs;
        const random = createRandom(labelPairs.seed, 11, draws++);
        const partners = Array.from(indices, (i) => {
          const members = byClass.get(labels[i]!)!;
          if (members.length === 1) return i;
          // Another member of i's class, uniformly: draw from the others by skipping i's slot.
          let j = members[Math.floor(random() * (members.length - 1))]!;
          if (j === i) j = members.at(-1)!;
          return j;
        });
        const n = indices.length;
        const mask = new Float32Array(n * n);
        for (let a = 0; a < n; a++) {
          const la = labels[indices[a]!]!;
          for (let b = 0; b < n; b++) if (a !== b && labels[indices[b]!] === la) mask[a * n + b] = 1;
        }
        const documents = take(corpus, partners);
        const otherPositives = tf.tensor2d(mask, [n, n]);
        return {
          embeddings,
          queries: embeddings,
          documents,
          otherPositives,
          size: n,
          dispose: () => tf.dispose([embeddings, documents, otherPositives]),
        };
      }
      if (pairs === undefined) return { embeddings, size: indices.length, dispose: () => embeddings.dispose() };
      const pairIndices = [...new Set(Array.from(indices, (i) => i % pairs.queries.rows))];
      const queries = take(pairs.queries, pairIndices);
      const documents = take(pairs.documents, pairIndices);
      const negatives = pairs.negatives === undefined ? undefined : take(pairs.negatives, pairIndices);
      return {
        embeddings,
        queries,
        documents,
        ...(negatives === undefined ? {} : { negatives }),
        size: indices.length,
        dispose: () => tf.dispose([embeddings, queries, documents, negatives]),
      };
    },
  };
}

export interface FitAdaptorOptions extends AdaptorModelOptions {
  /** Embeddings of the model to adapt [N, d], e.g. the corpus to be indexed. */
  corpus: Rows;
  /** Optional supervision: adapted queries should rank their own document first at every prefix. */
  pairs?: EmbeddingPairs;
  /**
   * Optional supervision from class labels of the corpus rows [N] (instead of `pairs`): the ranking
   * term then takes each batch row as a query and another corpus row of its class as its document,
   * and leaves the batch's other rows of that class out of the query's negatives.
   */
  labels?: Int32Array;
  /**
   * Keep a host copy of the weights every this many steps (and at the end), returned as
   * `snapshots`, for model selection on validation rows ({@link selectAdaptor}). Default: none.
   */
  snapshotEvery?: number;
  /** Nesting dims, ascending (default powers of two from 8, plus d). */
  dims?: readonly number[];
  /** Hidden width of g (default 2d). */
  hidden?: number;
  /** 'pca': start from the PCA rotation of the corpus (see `AdaptorConfig.rotation`); default 'none'. */
  rotation?: 'none' | 'pca';
  /**
   * Subtract the corpus mean from every input first (see `AdaptorConfig.center`), default false.
   * With `rotation: 'pca'` the untrained adaptor is then exactly the centred PCA map.
   */
  center?: boolean;
  /** Passes over the corpus (default 4), unless `steps` is set. */
  epochs?: number;
  steps?: number;
  /**
   * Rows drawn per batch (default 256); pairwise losses cost O(rows^2 * d). With `neighbours`,
   * each drawn row adds that many of its nearest neighbours.
   */
  batchSize?: number;
  /**
   * Neighbours per drawn row to add to its batch (default 0: random batches). Needs an exact
   * nearest-neighbour pass over the corpus first (O(N^2 d)).
   */
  neighbours?: number;
  /** AdamW peak learning rate (default 1e-3), cosine decay after `warmupSteps` (default 0). */
  lr?: number;
  warmupSteps?: number;
  seed?: number;
  onEvent?: (event: TrainEvent) => void;
}

/**
 * Trains a Matryoshka-Adaptor on existing embeddings with core's trainer (AdamW, cosine schedule,
 * non-finite loss check) and returns it with the fit summary.
 *
 * @example
 * ```ts
 * const { adaptor } = await fitAdaptor({ corpus: { data, rows, dim: 64 }, dims: [8, 16, 32, 64] });
 * await saveAdaptor('out/adaptor', await adaptor.weights());
 * ```
 */
export async function fitAdaptor(
  options: FitAdaptorOptions,
): Promise<{ adaptor: MatryoshkaAdaptor; fit: FitResult; snapshots: AdaptorSnapshot[] }> {
  const { corpus, pairs, labels } = options;
  checkRows(corpus, 'the corpus embeddings');
  if (labels !== undefined) {
    if (pairs !== undefined) {
      throw new MrlError(
        'invalid-argument',
        'the adaptor got both (query, document) pairs and class labels for the ranking term.',
        'Give one: pairs, or labels (pairs of rows of the same class are then drawn from the corpus).',
      );
    }
    if (labels.length !== corpus.rows) {
      throw new MrlError(
        'invalid-argument',
        `the corpus has ${corpus.rows} embeddings but ${labels.length} labels.`,
        'Give one class label per corpus row.',
      );
    }
  }
  const snapshotEvery = options.snapshotEvery;
  if (snapshotEvery !== undefined && !(Number.isInteger(snapshotEvery) && snapshotEvery >= 1)) {
    throw new MrlError('invalid-argument', `snapshotEvery must be a positive integer, got ${snapshotEvery}.`);
  }
  if (pairs !== undefined) {
    checkRows(pairs.queries, 'the query embeddings');
    checkRows(pairs.documents, 'the document embeddings');
    if (pairs.queries.rows !== pairs.documents.rows) {
      throw new MrlError(
        'invalid-argument',
        `the pairs have ${pairs.queries.rows} queries but ${pairs.documents.rows} documents.`,
        'Give one document per query: row i of the documents is the positive of query i.',
      );
    }
    if (pairs.negatives !== undefined) {
      checkRows(pairs.negatives, 'the hard-negative embeddings');
      if (pairs.negatives.rows !== pairs.queries.rows) {
        throw new MrlError(
          'invalid-argument',
          `the pairs have ${pairs.queries.rows} queries but ${pairs.negatives.rows} hard negatives.`,
          'Give one hard negative per query: row i of the negatives is a wrong answer close to query i.',
        );
      }
    }
    for (const [what, m] of [
      ['query', pairs.queries],
      ['document', pairs.documents],
      ...(pairs.negatives === undefined ? [] : ([['hard-negative', pairs.negatives]] as const)),
    ] as const) {
      if (m.dim !== corpus.dim) {
        throw new MrlError(
          'invalid-argument',
          `the ${what} embeddings have ${m.dim} dims but the corpus embeddings have ${corpus.dim}.`,
          'Embed queries, documents and corpus with the same model.',
        );
      }
    }
  }
  const d = corpus.dim;
  const { dims } = resolveNesting({ embeddingDim: d, ...(options.dims === undefined ? {} : { dims: options.dims }) });
  if (dims.at(-1) !== d) {
    throw new MrlError(
      'invalid-argument',
      `the last nesting dim must be the embedding size ${d}, got ${dims.at(-1)}.`,
      `Add ${d} to the dims: the adaptor's similarity targets are the full-size embeddings.`,
    );
  }
  const hidden = options.hidden ?? defaultHidden(d);
  if (!Number.isInteger(hidden) || hidden < 1) {
    throw new MrlError('invalid-argument', `hidden must be a positive integer, got ${hidden}.`);
  }
  const seed = options.seed ?? 0;
  const random: Random = createRandom(seed, 7);
  const rotation = options.rotation ?? 'none';
  if (rotation !== 'none' && rotation !== 'pca') {
    throw new MrlError('invalid-argument', `rotation must be 'none' or 'pca', got '${String(rotation)}'.`);
  }
  const center = options.center ?? false;
  const pca = rotation === 'pca' || center ? fitPca(corpus, 'the corpus embeddings') : undefined;
  const matrix = rotation === 'pca' ? Float32Array.from(pca!.directions) : undefined;
  const mean = center ? Float32Array.from(pca!.mean) : undefined;
  const adaptor = new MatryoshkaAdaptor(
    { dim: d, hidden, dims: [...dims], rotation, ...(center ? { center } : {}) },
    random,
    matrix,
    mean,
  );
  try {
    const model = new AdaptorModel(adaptor, options);
    const p = options.neighbours ?? 0;
    const knn = p > 0 ? { indices: await nearestNeighbours(corpus, p), k: p } : undefined;
    const snapshots: AdaptorSnapshot[] = [];
    // Synchronous host copies (the trainer's events are synchronous): the weights are small.
    const snapshot = (step: number): void => {
      const [w1, b1, w2, b2] = [adaptor.w1, adaptor.b1, adaptor.w2, adaptor.b2].map((v) =>
        (v.dataSync() as Float32Array).slice(),
      ) as [Float32Array, Float32Array, Float32Array, Float32Array];
      const weights: AdaptorWeights = { config: { ...adaptor.config, dims: [...adaptor.config.dims] }, w1, b1, w2, b2 };
      if (matrix !== undefined) weights.rotation = matrix;
      if (mean !== undefined) weights.mean = mean;
      snapshots.push({ step, weights });
    };
    const onEvent = (event: TrainEvent): void => {
      if (snapshotEvery !== undefined && event.type === 'step') {
        if (event.step % snapshotEvery === 0 || event.step === event.totalSteps) snapshot(event.step);
      }
      options.onEvent?.(event);
    };
    const labelPairs = labels === undefined ? undefined : { labels, seed };
    const trainer = new Trainer(model, adaptorBatches(corpus, pairs, knn, labelPairs), {
      batchSize: Math.min(options.batchSize ?? 256, corpus.rows),
      ...(options.steps === undefined ? { epochs: options.epochs ?? 4 } : { steps: options.steps }),
      seed,
      optimizer: { type: 'adamw', lr: options.lr ?? 1e-3, weightDecay: 0 },
      ...(options.warmupSteps === undefined ? {} : { warmupSteps: options.warmupSteps }),
      onEvent,
    });
    const fit = await trainer.fit();
    trainer.optimizer.dispose();
    return { adaptor, fit, snapshots };
  } catch (e) {
    adaptor.dispose();
    throw e;
  }
}

import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import { l2Normalize, softmaxCrossEntropy } from '../losses.js';
import type { VariableMap } from '../module.js';
import type { PrefixObjective } from '../objective.js';

/** Cosine similarity of every pair of rows of `z[:, :m]`: [N, N]. */
export function prefixCosineSimilarity(z: tf.Tensor2D, m: number): tf.Tensor2D {
  return tf.tidy(() => {
    const u = l2Normalize(tf.slice(z, [0, 0], [-1, m])); // [N, m]
    // A transpose and a plain product: transposed operands are slow on wasm (shared/ENGINE.md).
    return tf.matMul(u, tf.transpose(u));
  });
}

/** Reference similarities of a batch of original (full, unadapted) embeddings. */
export interface SimilarityTarget {
  /** Cosine similarity of every pair of original embeddings [N, N]. */
  similarity: tf.Tensor2D;
  /** 1 where column j is one of the k most similar other rows of row i, else 0 [N, N]. */
  neighbours?: tf.Tensor2D;
}

function checkBatch(rows: number, what: string): void {
  if (rows < 2) {
    throw new MrlError(
      'invalid-argument',
      `${what} needs at least 2 rows per batch to compare pairs, got ${rows}.`,
      'Use a batch size of 2 or more (and at least 2 embeddings).',
    );
  }
}

/**
 * Builds the target of the similarity objectives from original embeddings `e` [N, d]: the
 * full-dim cosine similarities and, with `k`, the mask of each row's k nearest other rows.
 */
export function similarityTarget(e: tf.Tensor2D, k?: number): SimilarityTarget {
  return tf.tidy(() => {
    const rows = e.shape[0];
    checkBatch(rows, 'the similarity target');
    const similarity = prefixCosineSimilarity(e, e.shape[1]);
    if (k === undefined) return { similarity };
    const kk = Math.min(k, rows - 1);
    // Cosines lie in [-1, 1]: lowering the diagonal by 4 keeps a row out of its own neighbours.
    const { indices } = tf.topk(tf.sub(similarity, tf.mul(tf.eye(rows), 4)), kk); // [N, kk]
    const neighbours = tf.sum(tf.oneHot(indices, rows), 1) as tf.Tensor2D; // [N, N]
    return { similarity, neighbours: tf.cast(neighbours, 'float32') as tf.Tensor2D };
  });
}

/**
 * Pairwise similarity preservation (Matryoshka-Adaptor's unsupervised pair loss): for each prefix
 * m, the mean over ordered pairs i != j of |cos(f(e_i)[:m], f(e_j)[:m]) - cos(e_i, e_j)|.
 *
 * @example
 * ```ts
 * const loss = new MatryoshkaLoss(new PairwiseSimilarityObjective(), { embeddingDim: 64 });
 * loss.compute(adaptor.apply(e), similarityTarget(e));
 * ```
 */
export class PairwiseSimilarityObjective implements PrefixObjective<SimilarityTarget> {
  readonly name = 'pairwise-similarity';

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: SimilarityTarget): tf.Scalar[] {
    const rows = embedding.shape[0];
    checkBatch(rows, this.name);
    const offDiagonal = tf.sub(1, tf.eye(rows));
    const losses = dims.map((m) =>
      tf.tidy(
        () =>
          tf.div(
            tf.sum(tf.mul(tf.abs(tf.sub(prefixCosineSimilarity(embedding, m), target.similarity)), offDiagonal)),
            rows * (rows - 1),
          ) as tf.Scalar,
      ),
    );
    offDiagonal.dispose();
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/**
 * Top-k similarity preservation (Matryoshka-Adaptor's local loss): the same absolute difference,
 * averaged over each row's k nearest neighbours in the full original space only, where nearest
 * neighbour search needs it most.
 */
export class TopKSimilarityObjective implements PrefixObjective<SimilarityTarget> {
  readonly name = 'topk-similarity';

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: SimilarityTarget): tf.Scalar[] {
    const { neighbours } = target;
    if (neighbours === undefined) {
      throw new MrlError('invalid-argument', `${this.name} needs a target built with k: similarityTarget(e, k).`);
    }
    const count = tf.sum(neighbours);
    const losses = dims.map((m) =>
      tf.tidy(
        () =>
          tf.div(
            tf.sum(tf.mul(tf.abs(tf.sub(prefixCosineSimilarity(embedding, m), target.similarity)), neighbours)),
            count,
          ) as tf.Scalar,
      ),
    );
    count.dispose();
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/**
 * Neighbour-distribution preservation (an SNE-style listwise term, Hinton & Roweis 2002): each
 * row's softmax over the other rows of the batch at temperature `t`, of the full original
 * cosines (target p) and of the prefix cosines (q); the loss is the mean over rows of
 * KL(p || q). With a small `t` the mass sits on the nearest neighbours, so the order of the
 * nearest rows counts rather than the size of the cosines: closer to what 1-NN and recall@k score
 * than the absolute differences of the pairwise and top-k terms.
 */
export class NeighbourDistributionObjective implements PrefixObjective<SimilarityTarget> {
  readonly name = 'neighbour-distribution';

  /** `temperature`: of both softmaxes (cosines are divided by it), default 0.05. */
  constructor(readonly temperature = 0.05) {
    if (!(Number.isFinite(temperature) && temperature > 0)) {
      throw new MrlError(
        'invalid-argument',
        `the neighbour temperature must be a finite number > 0, got ${temperature}.`,
      );
    }
  }

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: SimilarityTarget): tf.Scalar[] {
    const rows = embedding.shape[0];
    checkBatch(rows, this.name);
    // A row is not its own neighbour: its logit drops far below any cosine / t.
    const self = tf.mul(tf.eye(rows), -1e4);
    const offDiagonal = tf.sub(1, tf.eye(rows));
    const logP = tf.logSoftmax(tf.add(tf.div(target.similarity, this.temperature), self)); // [N, N]
    const p = tf.mul(tf.exp(logP), offDiagonal);
    const losses = dims.map((m) =>
      tf.tidy(() => {
        const logQ = tf.logSoftmax(tf.add(tf.div(prefixCosineSimilarity(embedding, m), this.temperature), self));
        return tf.div(tf.sum(tf.mul(p, tf.sub(logP, logQ))), rows) as tf.Scalar;
      }),
    );
    tf.dispose([self, offDiagonal, logP, p]);
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/** The adapted documents of a batch of N queries. */
export interface RankingTarget {
  /**
   * [M, d] with M >= N: row i < N is query i's positive; rows N to M - 1 are extra negatives of
   * every query (e.g. the hard negatives of the batch's pairs), never a positive.
   */
  documents: tf.Tensor2D;
  /**
   * Optional [N, M], 1 where document j (j != i) is another positive of query i (e.g. the same
   * class) and 0 elsewhere: such documents are left out of query i's softmax instead of counted as
   * negatives. Without it every other document is a negative.
   */
  otherPositives?: tf.Tensor2D;
}

/**
 * Multiple-negatives ranking loss per prefix (the supervised Matryoshka-Adaptor term; Henderson et
 * al. 2017): softmax cross-entropy of `scale * cos(q_i[:m], d_j[:m])` over the batch's documents,
 * with document i the positive of query i and the others its negatives; documents beyond the N
 * queries' positives (hard negatives) are negatives of every query. With
 * `target.otherPositives` (label pairs: several documents of a batch share a query's class), those
 * documents are masked out of the query's softmax, as in supervised contrastive learning's
 * treatment of same-class rows.
 */
export class RankingObjective implements PrefixObjective<RankingTarget> {
  readonly name = 'ranking';

  /** `scale`: the inverse temperature of the cosine logits (sentence-transformers' default 20). */
  constructor(readonly scale = 20) {
    if (!(Number.isFinite(scale) && scale > 0)) {
      throw new MrlError('invalid-argument', `the ranking scale must be a finite number > 0, got ${scale}.`);
    }
  }

  /** Logits of prefix m [N, M]: row i scores query i against every document. */
  logits(queries: tf.Tensor2D, documents: tf.Tensor2D, m: number): tf.Tensor2D {
    return tf.tidy(() => {
      const q = l2Normalize(tf.slice(queries, [0, 0], [-1, m]));
      const d = l2Normalize(tf.slice(documents, [0, 0], [-1, m]));
      return tf.mul(tf.matMul(q, tf.transpose(d)), this.scale) as tf.Tensor2D;
    });
  }

  /** The positive of query i is document i. */
  labels(rows: number): tf.Tensor1D {
    return tf.range(0, rows, 1, 'int32') as tf.Tensor1D;
  }

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: RankingTarget): tf.Scalar[] {
    const rows = embedding.shape[0];
    const columns = target.documents.shape[0];
    if (columns < rows) {
      throw new MrlError(
        'invalid-argument',
        `the ranking loss got ${rows} queries but ${columns} documents.`,
        'Give one document per query, row i the positive of query i (extra negatives may follow them).',
      );
    }
    checkBatch(rows, this.name);
    const mask = target.otherPositives;
    if (mask !== undefined && (mask.shape[0] !== rows || mask.shape[1] !== columns)) {
      throw new MrlError(
        'invalid-argument',
        `the ranking loss's other-positives mask is [${mask.shape.join(', ')}] but the batch has ${rows} queries and ${columns} documents.`,
        `Give an [${rows}, ${columns}] mask (1 where document j is another positive of query i).`,
      );
    }
    const labels = this.labels(rows);
    // Masked documents drop ~1e4 below any logit (|logit| <= scale): out of the softmax.
    const drop = mask === undefined ? undefined : tf.mul(mask, -1e4);
    const losses = dims.map((m) =>
      tf.tidy(() => {
        const logits = this.logits(embedding, target.documents, m);
        return softmaxCrossEntropy(drop === undefined ? logits : (tf.add(logits, drop) as tf.Tensor2D), labels);
      }),
    );
    tf.dispose([labels, drop]);
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/**
 * The identity whose gradient is zero: what flows through it is a constant to the optimiser
 * (TF.js has no `stopGradient`; a custom gradient of zeros is one).
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const op = tf.customGrad(((input: tf.Tensor) => ({
    value: tf.clone(input),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as T;
}

/** A ranking batch plus the teacher's distribution over its documents. */
export interface DistillationTarget extends RankingTarget {
  /**
   * Log-softmax over the documents [N, M] of the teacher prefix's logits at the same temperature,
   * held constant (built by {@link DistillationObjective.teacher}, behind {@link stopGradient}).
   */
  teacherLogProbabilities: tf.Tensor2D;
}

/**
 * Listwise self-distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network",
 * with the adaptor's own largest prefix as the teacher): for each query i, the softmax over the
 * batch's documents (and hard negatives) of `(scale / t) * cos(q_i[:d], k_j[:d])` is the target p,
 * held constant, and that of `(scale / t) * cos(q_i[:m], k_j[:m])` is q_m; the loss of prefix m is
 * the mean over queries of KL(p_i || q_m,i). Unlike the ranking term, which gives a small prefix
 * only the hard label, this passes it the whole ranking the full vector learned: which wrong
 * documents are nearly right. Documents masked by `otherPositives` are out of both softmaxes.
 *
 * @example
 * ```ts
 * const distill = new DistillationObjective(20);
 * const teacher = distill.teacher(q, { documents }, 256);
 * new MatryoshkaLoss(distill, { embeddingDim: 256, dims: [64] }).compute(q, { documents, teacherLogProbabilities: teacher });
 * ```
 */
export class DistillationObjective implements PrefixObjective<DistillationTarget> {
  readonly name = 'distill';

  /**
   * `scale`: the ranking term's inverse temperature (default 20); `temperature`: the distillation
   * temperature t (default 1), dividing the logits of teacher and student alike.
   */
  constructor(
    readonly scale = 20,
    readonly temperature = 1,
  ) {
    if (!(Number.isFinite(scale) && scale > 0)) {
      throw new MrlError('invalid-argument', `the distillation scale must be a finite number > 0, got ${scale}.`);
    }
    if (!(Number.isFinite(temperature) && temperature > 0)) {
      throw new MrlError(
        'invalid-argument',
        `the distillation temperature must be a finite number > 0, got ${temperature}.`,
        "Use 1 (the ranking term's own softmax) or another positive number; above 1 softens both softmaxes.",
      );
    }
  }

  /** Log-softmax of prefix m's logits over the documents [N, M], masked documents left out. */
  private logSoftmax(queries: tf.Tensor2D, target: RankingTarget, m: number): tf.Tensor2D {
    return tf.tidy(() => {
      const q = l2Normalize(tf.slice(queries, [0, 0], [-1, m]));
      const k = l2Normalize(tf.slice(target.documents, [0, 0], [-1, m]));
      const logits = tf.mul(tf.matMul(q, tf.transpose(k)), this.scale / this.temperature);
      const mask = target.otherPositives;
      return tf.logSoftmax(mask === undefined ? logits : tf.add(logits, tf.mul(mask, -1e4))) as tf.Tensor2D;
    });
  }

  /** The teacher's log-probabilities at prefix `teacherDim` (the largest nesting dim), with no gradient. */
  teacher(queries: tf.Tensor2D, target: RankingTarget, teacherDim: number): tf.Tensor2D {
    return tf.tidy(() => stopGradient(this.logSoftmax(queries, target, teacherDim)));
  }

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: DistillationTarget): tf.Scalar[] {
    const rows = embedding.shape[0];
    const logP = target.teacherLogProbabilities;
    const columns = target.documents.shape[0];
    if (logP.shape[0] !== rows || logP.shape[1] !== columns) {
      throw new MrlError(
        'invalid-argument',
        `the distillation teacher is [${logP.shape.join(', ')}] but the batch has ${rows} queries and ${columns} documents.`,
        'Build the teacher from the same queries and documents: DistillationObjective.teacher(queries, target, d).',
      );
    }
    checkBatch(rows, this.name);
    const p = tf.exp(logP);
    const losses = dims.map((m) =>
      tf.tidy(() => {
        const logQ = this.logSoftmax(embedding, target, m);
        return tf.div(tf.sum(tf.mul(p, tf.sub(logP, logQ))), rows) as tf.Scalar;
      }),
    );
    p.dispose();
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/** Reconstruction term: mean squared difference between adapted and original embeddings. */
export function reconstructionLoss(adapted: tf.Tensor2D, original: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(adapted, original))) as tf.Scalar);
}

import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import type { VariableMap } from './module.js';
import type { PrefixObjective } from './objective.js';
import { l2Normalize } from './losses.js';

/** Second sentences of a batch of pairs and the pairs' gold similarity scores. */
export interface ScoredPairTarget {
  /** [N, d]: row i is the second sentence of pair i (the first is the embedding). */
  others: tf.Tensor2D;
  /** [N]: gold similarity of pair i (any scale; only the order matters). */
  scores: tf.Tensor1D;
}

/**
 * CoSENT (Su, 2022; sentence-transformers' `CoSENTLoss`) on nested prefixes: for each m, the
 * cosine of every pair's m-dim prefixes, and a penalty `log(1 + sum exp(scale (cos_i - cos_j)))`
 * over the pairs (i, j) whose gold scores say i < j. Only the order of the scores matters.
 *
 * @example
 * ```ts
 * const loss = new MatryoshkaLoss(new CoSENTObjective(), { embeddingDim: 128 });
 * loss.compute(encoder.encode(first, true), { others: encoder.encode(second, true), scores }, random);
 * ```
 */
export class CoSENTObjective implements PrefixObjective<ScoredPairTarget> {
  readonly name = 'cosent';

  /** `scale` is sentence-transformers' default, 20 (1 / temperature 0.05). */
  constructor(readonly scale = 20) {
    if (!(scale > 0 && Number.isFinite(scale)))
      throw new MrlError('invalid-argument', `CoSENT scale must be a positive number, got ${scale}.`);
  }

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: ScoredPairTarget): tf.Scalar[] {
    const n = embedding.shape[0];
    if (target.others.shape[0] !== n || target.scores.shape[0] !== n) {
      throw new MrlError(
        'invalid-argument',
        `CoSENT got ${n} first sentences, ${target.others.shape[0]} second sentences and ${target.scores.shape[0]} scores; they must pair up.`,
      );
    }
    // (i, j) counts when score_i < score_j: a pair ranked lower must not get a higher cosine.
    const penalised = tf.tidy(() =>
      tf.cast(tf.less(tf.expandDims(target.scores, 1), tf.expandDims(target.scores, 0)), 'float32'),
    ); // [N, N]
    const losses = dims.map((m) =>
      tf.tidy(() => {
        const a = l2Normalize(tf.slice(embedding, [0, 0], [-1, m]));
        const b = l2Normalize(tf.slice(target.others, [0, 0], [-1, m]));
        const cos = tf.mul(tf.sum(tf.mul(a, b), 1), this.scale); // [N]
        const diff = tf.sub(tf.expandDims(cos, 1), tf.expandDims(cos, 0)); // [N, N]: cos_i - cos_j
        const masked = tf.sub(diff, tf.mul(tf.sub(1, penalised), 1e12));
        // log(1 + sum exp(.)): the logsumexp of the terms with a 0 prepended.
        return tf.logSumExp(tf.concat([tf.zeros([1]), tf.reshape(masked, [-1])])) as tf.Scalar;
      }),
    );
    penalised.dispose();
    return losses;
  }

  variables(): VariableMap {
    return new Map();
  }
}

/** A teacher's embeddings of the batch's inputs, row for row. */
export interface TeacherTarget {
  /** [N, D] with D >= the largest nesting dim. */
  teacher: tf.Tensor2D;
}

/**
 * MSE distillation on nested prefixes (sentence-transformers' `MSELoss` under `MatryoshkaLoss`):
 * for each m, the mean squared difference between the student's prefix `z[:, :m]` and the
 * teacher's own prefix `t[:, :m]`, so a Matryoshka teacher's small dims teach the student's.
 *
 * @example
 * ```ts
 * const teacher = await readEmbeddings('teacher.npy'); // [N, 768]
 * const loss = new MatryoshkaLoss(new DistillationObjective(), { embeddingDim: 768 });
 * ```
 */
export class DistillationObjective implements PrefixObjective<TeacherTarget> {
  readonly name = 'mse-distillation';

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: TeacherTarget): tf.Scalar[] {
    const [n, width] = target.teacher.shape;
    if (n !== embedding.shape[0]) {
      throw new MrlError(
        'invalid-argument',
        `the batch has ${embedding.shape[0]} student embeddings but ${n} teacher embeddings; they must match row for row.`,
      );
    }
    const largest = dims[dims.length - 1] ?? 0;
    if (width < largest) {
      throw new MrlError(
        'invalid-argument',
        `the teacher embeddings have ${width} dims but the largest nesting dim is ${largest}.`,
        'Use nesting dims up to the teacher width, or a wider teacher.',
      );
    }
    return dims.map((m) =>
      tf.tidy(
        () =>
          tf.mean(
            tf.squaredDifference(tf.slice(embedding, [0, 0], [-1, m]), tf.slice(target.teacher, [0, 0], [-1, m])),
          ) as tf.Scalar,
      ),
    );
  }

  variables(): VariableMap {
    return new Map();
  }
}

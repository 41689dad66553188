import * as tf from '@tensorflow/tfjs';
import {
  l2Normalize,
  MrlError,
  prefixVariables,
  softmaxCrossEntropy,
  type Encoder,
  type MatryoshkaLoss,
  type PrefixObjective,
  type Random,
  type TrainModel,
  type VariableMap,
} from '@mrl/core';

/** The documents paired with a batch of queries: row i of `documents` is the positive of query i. */
export interface PairTarget {
  documents: tf.Tensor2D;
  /** Hard negatives [N, d] (row i is wrong for query i): extra candidates for every query. */
  negatives?: tf.Tensor2D;
}

/**
 * In-batch contrastive loss (InfoNCE, as sentence-transformers' MultipleNegativesRankingLoss and
 * CLIP) on nested prefixes: for each m, queries and documents are cut to m dims and L2-normalised
 * on their own, and each query must pick its own document among the batch's (and vice versa
 * when `symmetric`). With `negatives` (triplets), each query also ranks every hard negative of
 * the batch: the query -> document logits are [N, 2N] (sentence-transformers'
 * MultipleNegativesRankingLoss with a negative column); the document -> query side stays [N, N].
 */
export class InBatchContrastiveObjective implements PrefixObjective<PairTarget> {
  readonly name = 'in-batch-contrastive';

  constructor(
    readonly temperature = 0.05,
    readonly symmetric = true,
  ) {
    if (!(temperature > 0)) throw new MrlError('invalid-argument', `temperature must be > 0, got ${temperature}.`);
  }

  /** Similarity logits [N, N] of the m-dim prefixes. */
  logits(queries: tf.Tensor2D, documents: tf.Tensor2D, m: number): tf.Tensor2D {
    return tf.tidy(() => {
      const q = l2Normalize(tf.slice(queries, [0, 0], [-1, m]));
      const d = l2Normalize(tf.slice(documents, [0, 0], [-1, m]));
      return tf.div(tf.matMul(q, tf.transpose(d)), this.temperature) as tf.Tensor2D;
    });
  }

  /** Query i's positive is document i. */
  labels(n: number): tf.Tensor1D {
    return tf.range(0, n, 1, 'int32') as tf.Tensor1D;
  }

  prefixLosses(queries: tf.Tensor2D, dims: readonly number[], target: PairTarget): tf.Scalar[] {
    if (target.negatives !== undefined && target.negatives.shape[0] !== queries.shape[0]) {
      throw new MrlError(
        'invalid-argument',
        `got ${queries.shape[0]} queries but ${target.negatives.shape[0]} hard negatives; give one per query.`,
      );
    }
    if (target.documents.shape[0] !== queries.shape[0]) {
      throw new MrlError(
        'invalid-argument',
        `got ${queries.shape[0]} queries but ${target.documents.shape[0]} documents; they must pair up.`,
      );
    }
    return dims.map((m) =>
      tf.tidy(() => {
        const logits = this.logits(queries, target.documents, m);
        const labels = this.labels(queries.shape[0]);
        const candidates =
          target.negatives === undefined
            ? logits
            : (tf.concat([logits, this.logits(queries, target.negatives, m)], 1) as tf.Tensor2D); // [N, 2N]
        const forward = softmaxCrossEntropy(candidates, labels);
        return this.symmetric
          ? (tf.div(tf.add(forward, softmaxCrossEntropy(tf.transpose(logits), labels)), 2) as tf.Scalar)
          : forward;
      }),
    );
  }

  variables(): VariableMap {
    return new Map();
  }
}

/** A batch of (query, document) pairs for one shared encoder. */
export interface PairBatch<Input> {
  queries: Input;
  documents: Input;
  /** One hard negative per query (triplets), encoded by the same encoder. */
  negatives?: Input;
  size: number;
  dispose(): void;
}

/** One encoder embeds both sides; the Matryoshka loss sums the contrastive loss over prefixes. */
export class PairModel<Input> implements TrainModel<PairBatch<Input>> {
  constructor(
    readonly encoder: Encoder<Input>,
    readonly matryoshka: MatryoshkaLoss<PairTarget>,
  ) {}

  loss(batch: PairBatch<Input>, random: Random): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const q = this.encoder.encode(batch.queries, true);
    const d = this.encoder.encode(batch.documents, true);
    const n = batch.negatives === undefined ? undefined : this.encoder.encode(batch.negatives, true);
    const { total, parts } = this.matryoshka.compute(
      q,
      n === undefined ? { documents: d } : { documents: d, negatives: n },
      random,
    );
    return { total, parts };
  }

  variables(): VariableMap {
    return prefixVariables({ encoder: this.encoder, objective: this.matryoshka });
  }
}

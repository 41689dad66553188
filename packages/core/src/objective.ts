import * as tf from '@tensorflow/tfjs';
import type { PrefixHead } from './heads.js';
import { softmaxCrossEntropy } from './losses.js';
import { stackedSoftmaxCrossEntropy, unstackFirst } from './ops/prefix-logits.js';
import type { HasVariables, VariableMap } from './module.js';

/**
 * The adapter between an objective and the Matryoshka loss. An objective that ends in a
 * classification-like loss (softmax over classes, over a vocabulary, or over the other items of
 * a batch) returns that loss for every requested prefix `z[:, :m]` of one embedding, computed
 * once by the caller. The Matryoshka loss weights and sums them.
 *
 * `Target` is whatever the objective compares against: class labels, masked-token ids, a
 * second embedding for contrastive pairs.
 */
export interface PrefixObjective<Target> extends HasVariables {
  readonly name: string;
  /** One scalar loss per m in `dims` (ascending), in that order. */
  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: Target): tf.Scalar[];
  /**
   * Optional fast path: the same losses as one [k] tensor from one op, which the Matryoshka loss
   * weights and sums with two more ops instead of 2k.
   */
  prefixLossVector?(embedding: tf.Tensor2D, dims: readonly number[], target: Target): tf.Tensor1D;
}

/** Class labels [N] (int32) for a softmax classification objective. */
export interface ClassTarget {
  labels: tf.Tensor1D;
}

/**
 * Softmax classification over a prefix head: cross-entropy of each prefix's logits. With
 * `SeparateHeads` this is the reference MRL; with `SharedHead` it is MRL-E.
 *
 * @example
 * ```ts
 * const objective = new ClassificationObjective(new SharedHead(64, 10, createRandom(0)));
 * const loss = new MatryoshkaLoss(objective, { embeddingDim: 64 });
 * ```
 */
export class ClassificationObjective implements PrefixObjective<ClassTarget> {
  readonly name = 'classification';
  readonly prefixLossVector?: (embedding: tf.Tensor2D, dims: readonly number[], target: ClassTarget) => tf.Tensor1D;

  constructor(readonly head: PrefixHead) {
    const fused = head.prefixSoftmaxCrossEntropy?.bind(head);
    if (fused !== undefined) this.prefixLossVector = (embedding, dims, target) => fused(embedding, dims, target.labels);
  }

  prefixLosses(embedding: tf.Tensor2D, dims: readonly number[], target: ClassTarget): tf.Scalar[] {
    // Callers run this under a tidy or a gradient tape, which frees the logits.
    if (this.prefixLossVector !== undefined)
      return unstackFirst<tf.Scalar>(this.prefixLossVector(embedding, dims, target));
    if (this.head.stackedLogits !== undefined) {
      return unstackFirst<tf.Scalar>(
        stackedSoftmaxCrossEntropy(this.head.stackedLogits(embedding, dims), target.labels),
      );
    }
    return this.head.logits(embedding, dims).map((l) => softmaxCrossEntropy(l, target.labels));
  }

  variables(): VariableMap {
    return this.head.variables();
  }
}

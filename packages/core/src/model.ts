import type * as tf from '@tensorflow/tfjs';
import type { Encoder } from './encoder.js';
import type { MatryoshkaLoss } from './matryoshka-loss.js';
import { prefixVariables, type VariableMap } from './module.js';
import type { Random } from './rng.js';

/** What the trainer needs from a model: a loss for a batch and the variables it updates. */
export interface TrainModel<Batch> {
  /**
   * Loss of one batch in training mode. Runs under the trainer's gradient tape; `random` is the
   * step's seeded stream (dims sampling, dropout seeds).
   */
  loss(batch: Batch, random: Random): { total: tf.Scalar; parts: Record<string, tf.Scalar> };
  variables(): VariableMap;
}

/** A supervised example batch: encoder inputs and the objective's target. */
export interface SupervisedBatch<Input, Target> {
  input: Input;
  target: Target;
  /** Number of examples, for throughput. */
  size: number;
  dispose(): void;
}

/**
 * An encoder trained through a Matryoshka loss: the encoder runs once per batch and every
 * nesting dim's loss slices its output.
 */
export class MatryoshkaModel<Input, Target> implements TrainModel<SupervisedBatch<Input, Target>> {
  constructor(
    readonly encoder: Encoder<Input>,
    readonly matryoshka: MatryoshkaLoss<Target>,
  ) {}

  loss(batch: SupervisedBatch<Input, Target>, random: Random): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const embedding = this.encoder.encode(batch.input, true);
    const { total, parts } = this.matryoshka.compute(embedding, batch.target, random);
    return { total, parts };
  }

  variables(): VariableMap {
    return prefixVariables({ encoder: this.encoder, objective: this.matryoshka });
  }
}

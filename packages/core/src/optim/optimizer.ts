import type * as tf from '@tensorflow/tfjs';

/** Optimiser settings as they appear in a run config. */
export type OptimizerConfig =
  | { type: 'sgd'; lr: number; momentum?: number; nesterov?: boolean; weightDecay?: number }
  | { type: 'adamw'; lr: number; beta1?: number; beta2?: number; epsilon?: number; weightDecay?: number };

/**
 * Updates named variables from their gradients. The state (moments, step count) is exposed as
 * named tensors so a checkpoint can store it and a resumed run continues exactly.
 */
export interface Optimizer {
  readonly config: OptimizerConfig;
  /**
   * Applies one update with learning rate `lr` (the schedule's value for this step), times
   * `lrScales.get(name)` for the variables listed there (layer-wise learning-rate decay).
   */
  apply(
    variables: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor>,
    lr: number,
    lrScales?: ReadonlyMap<string, number>,
  ): void;
  /**
   * Slots keyed `<variable name>/<slot>`, plus scalar counters. Slot variables stay the
   * optimiser's; other tensors (counters) are new and the caller disposes them.
   */
  getState(): Map<string, tf.Tensor>;
  setState(state: Map<string, tf.Tensor>): void;
  dispose(): void;
}

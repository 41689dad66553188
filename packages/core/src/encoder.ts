import type * as tf from '@tensorflow/tfjs';
import type { HasVariables } from './module.js';

/** JSON description of an encoder: enough to rebuild it (weights come from a checkpoint). */
export interface EncoderConfig {
  /** Registered architecture name, e.g. `mlp`, `resnet18-cifar`, `bert-mini`. */
  architecture: string;
  embeddingDim: number;
  [key: string]: unknown;
}

/**
 * Maps a batch of inputs to embeddings [N, d]. Every architecture (MLP, ResNet, ViT, BERT, a
 * user's plug-in) implements this, so the Matryoshka loss, trainer and evaluation work with any.
 */
export interface Encoder<Input = tf.Tensor> extends HasVariables {
  readonly config: EncoderConfig;
  readonly embeddingDim: number;
  /** [N, ...] -> [N, d]; `training` switches dropout and batch-norm statistics. */
  encode(input: Input, training: boolean): tf.Tensor2D;
  dispose(): void;
}

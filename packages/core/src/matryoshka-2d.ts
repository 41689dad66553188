import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import { MatryoshkaLoss, type MatryoshkaLossOptions } from './matryoshka-loss.js';
import type { VariableMap } from './module.js';
import type { PrefixObjective } from './objective.js';
import type { Random } from './rng.js';
import { sumTensors } from './ops/sum-tensors.js';

export interface Matryoshka2dLossOptions extends MatryoshkaLossOptions {
  /**
   * Weight of each layer's Matryoshka loss, shallowest first; its length is the number of layer
   * embeddings `compute` takes. Default: 1 for every layer.
   */
  layerWeights?: readonly number[];
  /**
   * Earlier layers trained per step, drawn at random; the last layer always trains
   * (sentence-transformers' `n_layers_per_step`). Default: every layer, every step.
   */
  layersPerStep?: number;
}

/** The loss of one step over layers x dims. */
export interface Matryoshka2dLossValue {
  total: tf.Scalar;
  /** Unweighted loss of each (layer, dim) used, keyed `layer<l>/loss/<m>` (l counts from 1). */
  parts: Record<string, tf.Scalar>;
  /** The layers (1-based) used this step. */
  layers: number[];
}

/**
 * 2D Matryoshka loss (Li et al., 2024, "2D Matryoshka Sentence Embeddings"; sentence-transformers'
 * `Matryoshka2dLoss`): the Matryoshka loss of an inner objective applied to the pooled embedding
 * of several encoder layers, so that both a prefix of the dims and a prefix of the layers give a
 * usable embedding. `sum_l v_l sum_m w_m L(z_l[:, :m])`.
 *
 * @example
 * ```ts
 * const loss = new Matryoshka2dLoss(new InBatchContrastiveObjective(), { embeddingDim: 128, layerWeights: [0.5, 1] });
 * const { total } = loss.compute(bert.encodeLayers(batch, true), target, random);
 * ```
 */
export class Matryoshka2dLoss<Target> {
  readonly matryoshka: MatryoshkaLoss<Target>;
  readonly layerWeights: readonly number[] | undefined;
  readonly layersPerStep: number | undefined;

  constructor(objective: PrefixObjective<Target>, options: Matryoshka2dLossOptions) {
    this.matryoshka = new MatryoshkaLoss(objective, options);
    const weights = options.layerWeights;
    if (weights !== undefined) {
      if (weights.length === 0)
        throw new MrlError('invalid-argument', 'layerWeights is empty; give one weight per layer embedding.');
      weights.forEach((w, i) => {
        if (!(w > 0 && Number.isFinite(w)))
          throw new MrlError('invalid-argument', `layerWeights[${i}] must be a positive number, got ${w}.`);
      });
    }
    this.layerWeights = weights;
    const perStep = options.layersPerStep;
    if (perStep !== undefined && (!Number.isInteger(perStep) || perStep < 1))
      throw new MrlError('invalid-argument', `layersPerStep must be a positive integer, got ${perStep}.`);
    this.layersPerStep = perStep;
  }

  get dims(): readonly number[] {
    return this.matryoshka.dims;
  }

  /**
   * Loss of one batch from the pooled embedding of each layer [N, d], shallowest first. `random`
   * draws the earlier layers when `layersPerStep` is set (and the dims when `dimsPerStep` is).
   */
  compute(layerEmbeddings: readonly tf.Tensor2D[], target: Target, random?: Random): Matryoshka2dLossValue {
    const count = layerEmbeddings.length;
    if (count === 0) throw new MrlError('invalid-argument', 'Matryoshka2dLoss needs at least one layer embedding.');
    const weights = this.layerWeights ?? layerEmbeddings.map(() => 1);
    if (weights.length !== count) {
      throw new MrlError(
        'invalid-argument',
        `got ${count} layer embeddings but ${weights.length} layerWeights.`,
        'Give one weight per layer embedding, shallowest first.',
      );
    }
    let used = layerEmbeddings.map((_, i) => i);
    if (random !== undefined && this.layersPerStep !== undefined && this.layersPerStep < count - 1) {
      // A partial Fisher-Yates draw of the earlier layers; the last layer always trains.
      const earlier = used.slice(0, -1);
      for (let i = 0; i < this.layersPerStep; i++) {
        const j = i + Math.floor(random() * (earlier.length - i));
        [earlier[i], earlier[j]] = [earlier[j]!, earlier[i]!];
      }
      used = [...earlier.slice(0, this.layersPerStep).sort((a, b) => a - b), count - 1];
    }
    const parts: Record<string, tf.Scalar> = {};
    const totals: tf.Scalar[] = [];
    for (const l of used) {
      const value = this.matryoshka.compute(layerEmbeddings[l]!, target, random);
      for (const [key, part] of Object.entries(value.parts)) parts[`layer${l + 1}/${key}`] = part;
      totals.push(value.total);
    }
    const total = tf.tidy(() => sumTensors(totals.map((t, i) => tf.mul(t, weights[used[i]!]!))) as tf.Scalar);
    return { total, parts, layers: used.map((l) => l + 1) };
  }

  variables(): VariableMap {
    return this.matryoshka.variables();
  }
}

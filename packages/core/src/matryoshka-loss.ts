import * as tf from '@tensorflow/tfjs';
import { resolveNesting, sampleDimIndices, type NestingOptions } from './dims.js';
import { MrlError } from './errors.js';
import type { VariableMap } from './module.js';
import type { PrefixObjective } from './objective.js';
import { unstackFirst } from './ops/prefix-logits.js';
import { sumTensors } from './ops/sum-tensors.js';
import type { Random } from './rng.js';

export interface MatryoshkaLossOptions extends NestingOptions {
  /**
   * Train on this many nesting dims per step, drawn at random, always with the full dim
   * (sentence-transformers' `n_dims_per_step`). Default: all dims every step.
   */
  dimsPerStep?: number;
}

export interface MatryoshkaLossValue {
  /** Weighted sum over the dims used this step: what the optimiser minimises. */
  total: tf.Scalar;
  /** Unweighted loss of each dim used this step, keyed `loss/<m>`. */
  parts: Record<string, tf.Scalar>;
  /** The dims used this step. */
  dims: number[];
}

/**
 * Matryoshka Representation Learning loss (Kusupati et al., NeurIPS 2022): the weighted sum of an
 * objective's losses over nested prefixes `z[:, :m]`, m in M, of one embedding.
 *
 * `sum_m w_m * L(z[:, :m])`, with M and w validated here; the encoder runs once and each prefix
 * is a slice of its output.
 *
 * @example
 * ```ts
 * const loss = new MatryoshkaLoss(new ClassificationObjective(new SharedHead(64, 10, rng)), { embeddingDim: 64 });
 * const { total, parts } = loss.compute(embedding, { labels });
 * ```
 */
export class MatryoshkaLoss<Target> {
  readonly dims: readonly number[];
  readonly weights: readonly number[];
  readonly dimsPerStep: number;

  constructor(
    readonly objective: PrefixObjective<Target>,
    options: MatryoshkaLossOptions,
  ) {
    const nesting = resolveNesting(options);
    this.dims = nesting.dims;
    this.weights = nesting.weights;
    this.dimsPerStep = options.dimsPerStep ?? this.dims.length;
    if (!Number.isInteger(this.dimsPerStep) || this.dimsPerStep < 1) {
      throw new MrlError('invalid-argument', `dimsPerStep must be a positive integer, got ${options.dimsPerStep}.`);
    }
  }

  get embeddingDim(): number {
    return this.dims[this.dims.length - 1]!;
  }

  /**
   * Loss of one batch. `random` picks the dims when `dimsPerStep` is below the number of dims;
   * without it all dims are used.
   */
  compute(embedding: tf.Tensor2D, target: Target, random?: Random): MatryoshkaLossValue {
    const width = embedding.shape[1];
    if (width < this.embeddingDim) {
      throw new MrlError(
        'invalid-argument',
        `embedding has ${width} dims but the largest nesting dim is ${this.embeddingDim}.`,
        'Make the encoder output at least as many dims as the largest nesting dim.',
      );
    }
    const indices =
      random === undefined || this.dimsPerStep >= this.dims.length
        ? this.dims.map((_, i) => i)
        : sampleDimIndices(this.dims.length, this.dimsPerStep, random);
    const dims = indices.map((i) => this.dims[i]!);
    const weights = indices.map((i) => this.weights[i]!);
    const vector = this.objective.prefixLossVector?.(embedding, dims, target);
    if (vector !== undefined) this.checkCount(vector.shape[0], dims.length);
    const losses =
      vector === undefined ? this.objective.prefixLosses(embedding, dims, target) : unstackFirst<tf.Scalar>(vector);
    this.checkCount(losses.length, dims.length);
    const parts: Record<string, tf.Scalar> = {};
    dims.forEach((m, j) => {
      parts[`loss/${m}`] = losses[j]!;
    });
    const total = tf.tidy(() =>
      vector === undefined
        ? (sumTensors(losses.map((l, j) => tf.mul(l, weights[j]!))) as tf.Scalar)
        : (tf.sum(tf.mul(vector, tf.tensor1d(weights))) as tf.Scalar),
    );
    return { total, parts, dims };
  }

  variables(): VariableMap {
    return this.objective.variables();
  }

  private checkCount(got: number, expected: number): void {
    if (got !== expected) {
      throw new MrlError(
        'invalid-argument',
        `objective '${this.objective.name}' returned ${got} losses for ${expected} dims.`,
      );
    }
  }
}

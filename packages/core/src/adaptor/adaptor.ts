import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import type { HasVariables, VariableMap } from '../module.js';
import { nextSeed, type Random } from '../rng.js';
import type { AdaptorConfig } from './config.js';
import { checkRows, type Rows } from './rows.js';

/** An adaptor's parameters on the host: `g(e) = relu(e W1 + b1) W2 + b2`. */
export interface AdaptorWeights {
  config: AdaptorConfig;
  /** [d, hidden], row-major. */
  w1: Float32Array;
  /** [hidden] */
  b1: Float32Array;
  /** [hidden, d], row-major. */
  w2: Float32Array;
  /** [d] */
  b2: Float32Array;
  /** [d, d], row-major: the fixed input rotation when `config.rotation` is 'pca'. */
  rotation?: Float32Array;
  /** [d]: the fixed mean subtracted from every input when `config.center` is true. */
  mean?: Float32Array;
}

/** Refuses a rotation or mean that does not match the config (missing, extra or the wrong size). */
function checkFixedInputs(config: AdaptorConfig, rotation: Float32Array | undefined, mean: Float32Array | undefined) {
  const { dim } = config;
  if ((config.rotation === 'pca') !== (rotation !== undefined)) {
    throw new MrlError(
      'invalid-argument',
      `an adaptor with rotation '${config.rotation ?? 'none'}' ${rotation === undefined ? 'needs a' : 'takes no'} rotation matrix.`,
    );
  }
  if (rotation !== undefined && rotation.length !== dim * dim) {
    throw new MrlError('invalid-argument', `the rotation must hold ${dim} x ${dim} values, got ${rotation.length}.`);
  }
  if ((config.center === true) !== (mean !== undefined)) {
    throw new MrlError(
      'invalid-argument',
      `an adaptor with center ${config.center === true} ${mean === undefined ? 'needs a' : 'takes no'} mean vector.`,
    );
  }
  if (mean !== undefined && mean.length !== dim) {
    throw new MrlError('invalid-argument', `the mean must hold ${dim} values, got ${mean.length}.`);
  }
}

/**
 * Matryoshka-Adaptor (Yoon et al., 2024, "Matryoshka-Adaptor: Unsupervised and Supervised Tuning
 * for Smaller Embedding Dimensions"): `f(e) = e + g(e)`, with g a one-hidden-layer ReLU MLP whose
 * output layer starts at zero, so an untrained adaptor returns its input unchanged. Trained so
 * that every prefix `f(e)[:m]` keeps the similarities of the full embeddings, it makes the
 * embeddings of a model trained without MRL nested, without touching the model.
 *
 * @example
 * ```ts
 * const adaptor = new MatryoshkaAdaptor({ dim: 64, hidden: 128, dims: [8, 16, 32, 64] }, createRandom(0));
 * const adapted = adaptor.apply(embeddings); // [N, 64], equal to embeddings before training
 * ```
 */
export class MatryoshkaAdaptor implements HasVariables {
  readonly w1: tf.Variable;
  readonly b1: tf.Variable;
  readonly w2: tf.Variable;
  readonly b2: tf.Variable;
  /** Fixed input rotation [d, d] (not trained), with `config.rotation` 'pca'. */
  readonly rotation: tf.Tensor2D | undefined;
  /** Fixed input mean [d] (not trained), with `config.center`. */
  readonly mean: tf.Tensor1D | undefined;

  constructor(
    readonly config: AdaptorConfig,
    random: Random,
    rotation?: Float32Array,
    mean?: Float32Array,
  ) {
    const { dim, hidden } = config;
    checkFixedInputs(config, rotation, mean);
    this.rotation = rotation === undefined ? undefined : tf.tensor2d(rotation, [dim, dim]);
    this.mean = mean === undefined ? undefined : tf.tensor1d(mean);
    // He initialisation for the ReLU layer; the output layer is zero (the identity map at start).
    this.w1 = tf.tidy(() =>
      tf.variable(tf.truncatedNormal([dim, hidden], 0, Math.sqrt(2 / dim), 'float32', nextSeed(random)), true),
    );
    this.b1 = tf.tidy(() => tf.variable(tf.zeros([hidden]), true));
    this.w2 = tf.tidy(() => tf.variable(tf.zeros([hidden, dim]), true));
    this.b2 = tf.tidy(() => tf.variable(tf.zeros([dim]), true));
  }

  /**
   * The MLP's input x for a batch `e` [N, d]: e, centred by the fixed mean and/or rotated by the
   * fixed rotation when the config says so. An orthogonal rotation keeps cosines, so x's cosines
   * are those of e (or of the centred e): the similarities the adaptor is trained to keep.
   */
  input(e: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      if (e.shape[1] !== this.config.dim) {
        throw new MrlError(
          'invalid-argument',
          `the adaptor maps ${this.config.dim}-dim embeddings, got ${e.shape[1]} dims.`,
          'Use an adaptor trained on embeddings of this model and size.',
        );
      }
      const centred = this.mean === undefined ? e : (tf.sub(e, this.mean) as tf.Tensor2D); // [N, d]
      return this.rotation === undefined ? centred : tf.matMul(centred, this.rotation); // [N, d]
    });
  }

  /** `x + g(x)` for a batch `e` [N, d], with x = {@link input}(e). */
  apply(e: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const x = this.input(e); // [N, d]
      const h = tf.relu(tf.add(tf.matMul(x, this.w1), this.b1)); // [N, hidden]
      return tf.add(x, tf.add(tf.matMul(h, this.w2), this.b2)) as tf.Tensor2D; // [N, d]
    });
  }

  variables(): VariableMap {
    return new Map([
      ['w1', this.w1],
      ['b1', this.b1],
      ['w2', this.w2],
      ['b2', this.b2],
    ]);
  }

  /** A host copy of the parameters, for {@link applyAdaptor} and saving. */
  async weights(): Promise<AdaptorWeights> {
    const [w1, b1, w2, b2] = await Promise.all([this.w1, this.b1, this.w2, this.b2].map((v) => v.data()));
    return {
      config: { ...this.config, dims: [...this.config.dims] },
      w1: w1 as Float32Array,
      b1: b1 as Float32Array,
      w2: w2 as Float32Array,
      b2: b2 as Float32Array,
      ...(this.rotation === undefined ? {} : { rotation: (await this.rotation.data()) as Float32Array }),
      ...(this.mean === undefined ? {} : { mean: (await this.mean.data()) as Float32Array }),
    };
  }

  /** Sets the parameters from a host copy (e.g. one read by `loadAdaptor`). */
  assign(weights: AdaptorWeights): void {
    tf.tidy(() => {
      const { dim, hidden } = this.config;
      this.w1.assign(tf.tensor2d(weights.w1, [dim, hidden]));
      this.b1.assign(tf.tensor1d(weights.b1));
      this.w2.assign(tf.tensor2d(weights.w2, [hidden, dim]));
      this.b2.assign(tf.tensor1d(weights.b2));
    });
  }

  dispose(): void {
    tf.dispose([this.w1, this.b1, this.w2, this.b2]);
    this.rotation?.dispose();
    this.mean?.dispose();
  }
}

/**
 * Applies an adaptor to plain rows without the tensor engine (float64 sums): what a service that
 * already stores embeddings runs before truncating them.
 *
 * @example
 * ```ts
 * const weights = await loadAdaptor('adaptor/');
 * const adapted = applyAdaptor(weights, { data: vectors, rows: 1000, dim: 64 });
 * ```
 */
export function applyAdaptor(weights: AdaptorWeights, matrix: Rows, source = 'the embeddings'): Rows {
  const { dim, hidden } = weights.config;
  checkRows(matrix, source);
  if (matrix.dim !== dim) {
    throw new MrlError(
      'invalid-argument',
      `${source} have ${matrix.dim} dims but the adaptor maps ${dim}-dim embeddings.`,
      'Use the adaptor trained on embeddings of this model and size.',
    );
  }
  const { w1, b1, w2, b2, rotation, mean } = weights;
  checkFixedInputs(weights.config, rotation, mean);
  const out = new Float32Array(matrix.rows * dim);
  const h = new Float64Array(hidden);
  const y = new Float64Array(dim);
  const rotated = new Float32Array(dim);
  const centred = new Float32Array(dim);
  for (let r = 0; r < matrix.rows; r++) {
    let e = matrix.data.subarray(r * dim, (r + 1) * dim);
    if (mean !== undefined) {
      // float32 like the tensor and ONNX paths: (e - mean) rounded once per value.
      for (let i = 0; i < dim; i++) centred[i] = e[i]! - mean[i]!;
      e = centred;
    }
    if (rotation !== undefined) {
      y.fill(0);
      for (let i = 0; i < dim; i++) {
        const v = e[i]!;
        for (let j = 0; j < dim; j++) y[j]! += v * rotation[i * dim + j]!;
      }
      rotated.set(y);
      e = rotated;
    }
    for (let j = 0; j < hidden; j++) h[j] = b1[j]!;
    for (let i = 0; i < dim; i++) {
      const v = e[i]!;
      if (v === 0) continue;
      const row = i * hidden;
      for (let j = 0; j < hidden; j++) h[j]! += v * w1[row + j]!;
    }
    for (let i = 0; i < dim; i++) y[i] = b2[i]!;
    for (let j = 0; j < hidden; j++) {
      const v = h[j]!;
      if (!(v > 0)) continue; // ReLU
      const row = j * dim;
      for (let i = 0; i < dim; i++) y[i]! += v * w2[row + i]!;
    }
    for (let i = 0; i < dim; i++) out[r * dim + i] = e[i]! + y[i]!;
  }
  return { data: out, rows: matrix.rows, dim };
}

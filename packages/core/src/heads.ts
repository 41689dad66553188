import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import type { HasVariables, VariableMap } from './module.js';
import { stackedPrefixLogits, unstackFirst } from './ops/prefix-logits.js';
import { prefixSoftmaxCrossEntropy } from './ops/prefix-softmax-ce.js';
import { nextSeed, type Random } from './rng.js';

/** Maps an embedding to class logits for every requested nesting dim at once. */
export interface PrefixHead extends HasVariables {
  readonly embeddingDim: number;
  readonly numClasses: number;
  /** Logits [N, C] of `z[:, :m]` for each m in `dims` (ascending), in that order. */
  logits(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor2D[];
  /** Optional fast path: all prefix logits stacked as [k, N, C]. */
  stackedLogits?(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor3D;
  /** Optional fast path: each prefix's mean softmax cross-entropy against `labels`, as [k]. */
  prefixSoftmaxCrossEntropy?(embedding: tf.Tensor2D, dims: readonly number[], labels: tf.Tensor1D): tf.Tensor1D;
}

/** Linear-layer initialisation as in PyTorch `nn.Linear`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
function linearInit(shape: [number, number] | [number], fanIn: number, random: Random, name: string): tf.Variable {
  const bound = 1 / Math.sqrt(fanIn);
  // The tidy frees the initial value; the variable keeps its data.
  return tf.tidy(() => tf.variable(tf.randomUniform(shape, -bound, bound, 'float32', nextSeed(random)), true, name));
}

let headCounter = 0;
function uniqueName(base: string): string {
  headCounter += 1;
  return `${base}_${headCounter}`;
}

function checkHeadArgs(embeddingDim: number, numClasses: number): void {
  if (!Number.isInteger(embeddingDim) || embeddingDim < 1) {
    throw new MrlError('invalid-argument', `head embeddingDim must be a positive integer, got ${embeddingDim}.`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new MrlError('invalid-argument', `head numClasses must be an integer >= 2, got ${numClasses}.`);
  }
}

function checkDimsInHead(dims: readonly number[], embeddingDim: number): void {
  for (const m of dims) {
    if (m > embeddingDim) {
      throw new MrlError(
        'invalid-argument',
        `nesting dim ${m} is larger than the head's embedding size ${embeddingDim}.`,
      );
    }
  }
}

/**
 * One linear classifier per nesting dim (the reference MRL's `nesting_list` heads): dim m owns
 * W_m [m, C] and b_m [C].
 */
export class SeparateHeads implements PrefixHead {
  readonly #weights = new Map<number, tf.Variable>();
  readonly #biases = new Map<number, tf.Variable>();

  constructor(
    readonly embeddingDim: number,
    readonly numClasses: number,
    readonly dims: readonly number[],
    random: Random,
  ) {
    checkHeadArgs(embeddingDim, numClasses);
    checkDimsInHead(dims, embeddingDim);
    const scope = uniqueName('separate_heads');
    for (const m of dims) {
      this.#weights.set(m, linearInit([m, numClasses], m, random, `${scope}/w${m}`));
      this.#biases.set(m, linearInit([numClasses], m, random, `${scope}/b${m}`));
    }
  }

  logits(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor2D[] {
    return dims.map((m) => {
      const w = this.#weights.get(m);
      const b = this.#biases.get(m);
      if (w === undefined || b === undefined) {
        throw new MrlError(
          'invalid-argument',
          `SeparateHeads has no head for dim ${m}; it was built for ${this.dims.join(', ')}.`,
        );
      }
      return tf.tidy(() => tf.add(tf.matMul(tf.slice(embedding, [0, 0], [-1, m]), w), b) as tf.Tensor2D);
    });
  }

  stackedLogits(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => tf.stack(this.logits(embedding, dims)) as tf.Tensor3D);
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    for (const m of this.dims) {
      out.set(`w${m}`, this.#weights.get(m)!);
      out.set(`b${m}`, this.#biases.get(m)!);
    }
    return out;
  }
}

/** How the shared head forms its prefix logits; all give the same numbers. */
export type SharedHeadForm = 'fused' | 'running-sum' | 'sliced';

/**
 * MRL-E: one weight matrix W [d, C] and bias b [C] shared by all nesting dims; dim m uses W[:m]
 * (the reference MRL's `efficient` head).
 *
 * In the 'running-sum' form the logits of consecutive prefixes are built from chunk products
 * `z[:, m_{j-1}:m_j] @ W[m_{j-1}:m_j]` and a running sum, so all prefixes together cost one
 * full-size product; it is the default, the fastest form measured on the wasm backend
 * (`bench/heads.mjs`). The 'fused' form does the same with a hand-written gradient that is again
 * one full-size product; on wasm its extra slices and concatenations cost more than the
 * zero-padded gradients autodiff builds, so it is an option, not the default. The 'sliced' form
 * multiplies each prefix separately (about 2x the work): the readable reference.
 */
export class SharedHead implements PrefixHead {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  /**
   * The running-sum form's losses as one op: one kernel each way where the backend has them
   * (wasm on native kernels), see {@link prefixSoftmaxCrossEntropy}. Absent in the other forms,
   * which keep their own computation.
   */
  readonly prefixSoftmaxCrossEntropy?: (
    embedding: tf.Tensor2D,
    dims: readonly number[],
    labels: tf.Tensor1D,
  ) => tf.Tensor1D;

  constructor(
    readonly embeddingDim: number,
    readonly numClasses: number,
    random: Random,
    readonly form: SharedHeadForm = 'running-sum',
  ) {
    checkHeadArgs(embeddingDim, numClasses);
    const scope = uniqueName('shared_head');
    this.weight = linearInit([embeddingDim, numClasses], embeddingDim, random, `${scope}/w`);
    this.bias = linearInit([numClasses], embeddingDim, random, `${scope}/b`);
    if (form === 'running-sum') {
      this.prefixSoftmaxCrossEntropy = (embedding, dims, labels) => {
        checkDimsInHead(dims, this.embeddingDim);
        return prefixSoftmaxCrossEntropy(embedding, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D, labels, dims);
      };
    }
  }

  logits(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor2D[] {
    checkDimsInHead(dims, this.embeddingDim);
    if (this.form === 'fused') return tf.tidy(() => unstackFirst<tf.Tensor2D>(this.stackedLogits(embedding, dims)));
    return this.form === 'sliced'
      ? slicedPrefixLogits(embedding, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D, dims)
      : runningSumPrefixLogits(embedding, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D, dims);
  }

  stackedLogits(embedding: tf.Tensor2D, dims: readonly number[]): tf.Tensor3D {
    checkDimsInHead(dims, this.embeddingDim);
    if (this.form === 'fused')
      return stackedPrefixLogits(embedding, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D, dims);
    return tf.tidy(() => tf.stack(this.logits(embedding, dims)) as tf.Tensor3D);
  }

  variables(): VariableMap {
    return new Map([
      ['w', this.weight],
      ['b', this.bias],
    ]);
  }
}

/** Logits of each prefix as its own product `z[:, :m] @ W[:m] + b`. */
export function slicedPrefixLogits(
  embedding: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  dims: readonly number[],
): tf.Tensor2D[] {
  return dims.map((m) =>
    tf.tidy(() => {
      const product = tf.matMul(tf.slice(embedding, [0, 0], [-1, m]), tf.slice(weight, [0, 0], [m, -1]));
      return (bias === null ? product : tf.add(product, bias)) as tf.Tensor2D;
    }),
  );
}

/**
 * Logits of each prefix from chunk products and a running sum: one full-size product in total.
 * `weight` is [d, C] (embedding axis first), or [C, d] with `weightLayout: 'classes-first'` (a
 * tied token-embedding table, multiplied as is instead of transposed every step).
 *
 * The chunks come from `split`, not `slice`: the gradient of a split is one concatenation,
 * while each slice's gradient is a zero-padded full-size copy that is then summed, which is
 * most of the Matryoshka overhead when C is a vocabulary.
 */
export function runningSumPrefixLogits(
  embedding: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  dims: readonly number[],
  weightLayout: 'embedding-first' | 'classes-first' = 'embedding-first',
): tf.Tensor2D[] {
  return tf.tidy(() => {
    const d = embedding.shape[1];
    const widths = dims.map((m, j) => m - (j === 0 ? 0 : dims[j - 1]!));
    // split needs sizes that cover the axis; a tail past the largest dim is split off unused.
    const sizes = dims[dims.length - 1]! < d ? [...widths, d - dims[dims.length - 1]!] : widths;
    const zChunks = sizes.length === 1 ? [embedding] : tf.split(embedding, sizes, 1);
    const classesFirst = weightLayout === 'classes-first';
    const wChunks = sizes.length === 1 ? [weight] : tf.split(weight, sizes, classesFirst ? 1 : 0);
    const out: tf.Tensor2D[] = [];
    let running: tf.Tensor2D | null = bias === null ? null : (tf.expandDims(bias, 0) as tf.Tensor2D);
    widths.forEach((_, j) => {
      const chunk: tf.Tensor2D = tf.matMul(zChunks[j]!, wChunks[j]!, false, classesFirst);
      const next: tf.Tensor2D = running === null ? chunk : tf.add(running, chunk);
      out.push(next);
      running = next;
    });
    return out;
  });
}

import * as tf from '@tensorflow/tfjs';
import {
  chunkedPrefixSoftmaxCrossEntropy,
  prefixVariables,
  prefixSoftmaxCrossEntropy,
  runningSumPrefixLogits,
  unstackFirst,
  type MatryoshkaLoss,
  type PrefixObjective,
  type Random,
  type TrainModel,
  type VariableMap,
} from '@mrl/core';
import { MrlError } from '@mrl/core';
import type { BertEncoder, TokenBatch } from './bert.js';
import { gatherRows } from './gather.js';
import type { EncodedBatch, SpecialIds } from './tokenizer/tokenizer.js';

export interface MaskingOptions {
  /** Fraction of real, non-special tokens chosen for prediction (BERT: 0.15). */
  probability?: number;
  /** Of the chosen tokens, the fraction replaced by `[MASK]` (0.8); `randomFraction` get a random token (0.1); the rest stay. */
  maskFraction?: number;
  randomFraction?: number;
}

/** A masked batch in plain arrays: what the model reads and what it must predict. */
export interface MaskedTokens {
  /** [B*T] ids after masking. */
  inputIds: Int32Array;
  /** Flat indices (row * T + column) of the chosen tokens. */
  positions: Int32Array;
  /** Original ids at `positions`. */
  labels: Int32Array;
}

/**
 * BERT's masking (Devlin et al., 2019, section 3.1): each real token other than `[CLS]`, `[SEP]`
 * and `[PAD]` is chosen with `probability`; a chosen token becomes `[MASK]` 80% of the time, a
 * random non-special token 10%, and stays itself 10%. At least one token per batch is chosen.
 */
export function maskTokens(
  batch: EncodedBatch,
  special: SpecialIds,
  vocabSize: number,
  random: Random,
  options: MaskingOptions = {},
): MaskedTokens {
  const probability = options.probability ?? 0.15;
  const maskFraction = options.maskFraction ?? 0.8;
  const randomFraction = options.randomFraction ?? 0.1;
  if (!(probability > 0 && probability <= 1))
    throw new MrlError('invalid-argument', `masking probability must be in (0, 1], got ${probability}.`);
  if (!(maskFraction >= 0 && randomFraction >= 0 && maskFraction + randomFraction <= 1)) {
    throw new MrlError(
      'invalid-argument',
      `maskFraction ${maskFraction} + randomFraction ${randomFraction} must be fractions summing to at most 1.`,
    );
  }
  const specials = new Set([special.pad, special.cls, special.sep, special.mask, special.unk]);
  const inputIds = Int32Array.from(batch.ids);
  const candidates: number[] = [];
  for (let i = 0; i < inputIds.length; i++) {
    if (batch.attentionMask[i] === 1 && !specials.has(inputIds[i]!)) candidates.push(i);
  }
  const chosen = candidates.filter(() => random() < probability);
  if (chosen.length === 0 && candidates.length > 0) chosen.push(candidates[Math.floor(random() * candidates.length)]!);
  if (chosen.length === 0)
    throw new MrlError('invalid-argument', 'the batch has no maskable tokens (only special tokens or padding).');
  const labels = new Int32Array(chosen.length);
  chosen.forEach((pos, j) => {
    labels[j] = inputIds[pos]!;
    const r = random();
    if (r < maskFraction) inputIds[pos] = special.mask;
    else if (r < maskFraction + randomFraction) {
      let id: number;
      do id = Math.floor(random() * vocabSize);
      while (specials.has(id));
      inputIds[pos] = id;
    }
  });
  return { inputIds, positions: Int32Array.from(chosen), labels };
}

/** Masked-token ids [M] (int32) for the MLM objective. */
export interface MlmTarget {
  labels: tf.Tensor1D;
}

/** Options for {@link TiedMlmObjective}. */
export interface TiedMlmOptions {
  /**
   * How the loss over the vocabulary runs: 'chunked' (default) streams vocabulary chunks through
   * every prefix and never stores the [M, V] logits; 'stacked' is the earlier kernel that
   * materialises each prefix's logits and probabilities (kept for comparison, see
   * bench/mlm-head.mjs). Both give the same losses and gradients.
   */
  head?: 'chunked' | 'stacked';
  /** Vocabulary classes per chunk for the 'chunked' head (default 512, `DEFAULT_VOCAB_CHUNK`). */
  chunk?: number;
}

/**
 * Masked-LM output tied to the input embeddings, as nested prefix losses (MRL-E over the
 * vocabulary): prefix m of a masked token's state is scored against the first m columns of the
 * token-embedding table E [V, d], `logits_m = h[:, :m] E[:, :m]^T + b`. All prefixes come from
 * one full-size product, split by nesting block, in vocabulary chunks.
 */
export class TiedMlmObjective implements PrefixObjective<MlmTarget> {
  readonly name = 'masked-lm';
  readonly bias: tf.Variable; // [V]
  readonly head: 'chunked' | 'stacked';
  readonly #chunk: number | undefined;

  constructor(
    readonly embedding: tf.Variable,
    options: TiedMlmOptions = {},
  ) {
    if (embedding.rank !== 2)
      throw new MrlError('invalid-argument', `the tied embedding must be a [V, d] matrix, got rank ${embedding.rank}.`);
    const head = options.head ?? 'chunked';
    if (head !== 'chunked' && head !== 'stacked')
      throw new MrlError('invalid-argument', `the MLM head must be 'chunked' or 'stacked', got '${String(head)}'.`);
    this.head = head;
    this.#chunk = options.chunk;
    this.bias = tf.variable(tf.zeros([embedding.shape[0]!]), true);
  }

  /** Logits [M, V] of every prefix in `dims`. */
  logits(states: tf.Tensor2D, dims: readonly number[]): tf.Tensor2D[] {
    return runningSumPrefixLogits(
      states,
      this.embedding as tf.Tensor2D,
      this.bias as tf.Tensor1D,
      dims,
      'classes-first',
    );
  }

  prefixLosses(states: tf.Tensor2D, dims: readonly number[], target: MlmTarget): tf.Scalar[] {
    // Callers run this under a tidy or a gradient tape, which frees the stacked losses.
    return unstackFirst<tf.Scalar>(this.prefixLossVector(states, dims, target));
  }

  /** All dims' losses from one op: one kernel each way on wasm with native kernels. */
  prefixLossVector(states: tf.Tensor2D, dims: readonly number[], target: MlmTarget): tf.Tensor1D {
    if (this.head === 'chunked') {
      return chunkedPrefixSoftmaxCrossEntropy(
        states,
        this.embedding as tf.Tensor2D,
        this.bias as tf.Tensor1D,
        target.labels,
        dims,
        this.#chunk === undefined ? {} : { chunk: this.#chunk },
      );
    }
    return prefixSoftmaxCrossEntropy(
      states,
      this.embedding as tf.Tensor2D,
      this.bias as tf.Tensor1D,
      target.labels,
      dims,
      'classes-first',
    );
  }

  /** The bias only: the tied table belongs to the encoder. */
  variables(): VariableMap {
    return new Map([['bias', this.bias]]);
  }
}

/** A masked batch as tensors. */
export interface MlmBatch {
  input: TokenBatch;
  /** int32 [M] flat indices of the masked tokens in [B*T]. */
  positions: tf.Tensor1D;
  target: MlmTarget;
  size: number;
  dispose(): void;
}

/** Tensors of a masked batch. */
export function mlmBatch(encoded: EncodedBatch, masked: MaskedTokens): MlmBatch {
  const shape: [number, number] = [encoded.batch, encoded.length];
  const input: TokenBatch = {
    ids: tf.tensor2d(masked.inputIds, shape, 'int32'),
    attentionMask: tf.tensor2d(encoded.attentionMask, shape, 'int32'),
  };
  const positions = tf.tensor1d(masked.positions, 'int32');
  const labels = tf.tensor1d(masked.labels, 'int32');
  return {
    input,
    positions,
    target: { labels },
    size: encoded.batch,
    dispose: () => tf.dispose([input.ids, input.attentionMask, positions, labels]),
  };
}

/** Token states [M, d] of the masked positions. */
function maskedStates(encoder: BertEncoder, batch: MlmBatch, training: boolean): tf.Tensor2D {
  return tf.tidy(() => {
    const states = encoder.encodeTokens(batch.input, training); // [B, T, d]
    const [b, t, d] = states.shape;
    return gatherRows(tf.reshape(states, [b * t, d]) as tf.Tensor2D, batch.positions);
  });
}

/**
 * Masked-LM pre-training through the Matryoshka loss: the encoder runs once, the masked tokens'
 * states are gathered, and every nesting dim's loss slices them.
 */
export class MlmModel implements TrainModel<MlmBatch> {
  constructor(
    readonly encoder: BertEncoder,
    readonly matryoshka: MatryoshkaLoss<MlmTarget>,
  ) {}

  loss(batch: MlmBatch, random: Random): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const { total, parts } = this.matryoshka.compute(maskedStates(this.encoder, batch, true), batch.target, random);
    return { total, parts };
  }

  variables(): VariableMap {
    return prefixVariables({ encoder: this.encoder, objective: this.matryoshka });
  }
}

/**
 * Masked-token top-1 accuracy at each nesting dim, over the given batches (inference mode).
 * Reads back asynchronously: a device backend (webgpu) cannot read synchronously in Node.
 */
export async function mlmAccuracy(
  encoder: BertEncoder,
  objective: TiedMlmObjective,
  batches: readonly MlmBatch[],
  dims: readonly number[],
): Promise<number[]> {
  const correct = dims.map(() => 0);
  let total = 0;
  for (const batch of batches) {
    const predictions = tf.tidy(() =>
      tf.stack(objective.logits(maskedStates(encoder, batch, false), dims).map((l) => tf.argMax(l, 1))),
    );
    const p = await predictions.data();
    predictions.dispose();
    const labels = await batch.target.labels.data();
    const m = labels.length;
    dims.forEach((_, j) => {
      for (let i = 0; i < m; i++) if (p[j * m + i] === labels[i]) correct[j]! += 1;
    });
    total += m;
  }
  return correct.map((c) => c / Math.max(1, total));
}

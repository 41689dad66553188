import * as tf from '@tensorflow/tfjs';
import {
  dropout,
  dropoutMultiplier,
  gelu,
  geluOf,
  layerNorm as coreLayerNorm,
  MrlError,
  multiHeadAttention,
  nextSeed,
  type Encoder,
  type EncoderConfig,
  type GeluForm,
  type Random,
  type VariableMap,
} from '@mrl/core';
import { gatherRows } from './gather.js';

/**
 * How a sentence embedding is read from the token states: the `[CLS]` state, the masked mean,
 * or BERT's pooler (`tanh(W h_CLS + b)`, Hugging Face's `pooler_output`).
 */
export type BertPooling = 'cls' | 'mean' | 'pooler';

/**
 * A BERT encoder (Devlin et al., 2019) as data. `embeddingDim` is the hidden size; the pooled
 * sentence embedding and every token state have that many dims.
 */
export interface BertConfig extends EncoderConfig {
  architecture: 'bert';
  vocabSize: number;
  numLayers: number;
  numHeads: number;
  /** Width of the feed-forward layer (4x the hidden size in BERT). */
  intermediateSize: number;
  maxPositions: number;
  /** Segment (token type) embeddings; 2 in BERT. */
  typeVocabSize: number;
  dropout: number;
  pooling: BertPooling;
  layerNormEps: number;
  /**
   * Std of the truncated-normal initial weights (HF `initializer_range`; default 0.02, BERT's).
   * Larger values let context reach a token's state sooner in short from-scratch runs.
   */
  initializerRange?: number;
  /**
   * The feed-forward GELU: `tanh` (default; the faster form mrl trains from scratch with) or
   * `erf` (exact; Hugging Face's `hidden_act: "gelu"`, which imported checkpoints need).
   */
  activation?: GeluForm;
}

/** Token ids with their padding mask, [B, T] each. */
export interface TokenBatch {
  /** int32 [B, T] */
  ids: tf.Tensor2D;
  /** [B, T], 1 for real tokens, 0 for padding. */
  attentionMask: tf.Tensor2D;
  /** int32 [B, T]; all zeros when absent. */
  segmentIds?: tf.Tensor2D;
}

const BASE = {
  architecture: 'bert',
  vocabSize: 30522,
  maxPositions: 512,
  typeVocabSize: 2,
  dropout: 0.1,
  pooling: 'mean',
  layerNormEps: 1e-12,
} as const;

/** Named BERT sizes (Turc et al., 2019, "Well-Read Students Learn Better"). */
export const BERT_CONFIGS: Readonly<Record<string, BertConfig>> = {
  'bert-tiny': { ...BASE, embeddingDim: 128, numLayers: 2, numHeads: 2, intermediateSize: 512 },
  'bert-mini': { ...BASE, embeddingDim: 256, numLayers: 4, numHeads: 4, intermediateSize: 1024 },
  'bert-small': { ...BASE, embeddingDim: 512, numLayers: 4, numHeads: 8, intermediateSize: 2048 },
};

/**
 * A registered BERT config with fields overridden, validated.
 *
 * @example bertConfig('bert-tiny', { vocabSize: 8000 })
 */
export function bertConfig(name: string, overrides: Partial<BertConfig> = {}): BertConfig {
  const base = BERT_CONFIGS[name];
  if (base === undefined) {
    throw new MrlError(
      'unknown-name',
      `unknown BERT config '${name}'.`,
      `Choose one of: ${Object.keys(BERT_CONFIGS).join(', ')}.`,
    );
  }
  const config = { ...base, ...overrides } as BertConfig;
  validateBertConfig(config);
  return config;
}

function validateBertConfig(c: BertConfig): void {
  const positive = [
    'embeddingDim',
    'vocabSize',
    'numLayers',
    'numHeads',
    'intermediateSize',
    'maxPositions',
    'typeVocabSize',
  ] as const;
  for (const key of positive) {
    const v = c[key];
    if (!Number.isInteger(v) || v < 1)
      throw new MrlError('invalid-config', `bert ${key} must be a positive integer, got ${v}.`);
  }
  if (c.embeddingDim % c.numHeads !== 0) {
    throw new MrlError(
      'invalid-config',
      `bert embeddingDim ${c.embeddingDim} is not divisible by numHeads ${c.numHeads}.`,
    );
  }
  if (c.initializerRange !== undefined && !(c.initializerRange > 0))
    throw new MrlError('invalid-config', `bert initializerRange must be > 0, got ${c.initializerRange}.`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new MrlError('invalid-config', `bert dropout must be in [0, 1), got ${c.dropout}.`);
  if (c.pooling !== 'cls' && c.pooling !== 'mean' && c.pooling !== 'pooler')
    throw new MrlError('invalid-config', `bert pooling must be 'cls', 'mean' or 'pooler', got '${String(c.pooling)}'.`);
  if (c.activation !== undefined && c.activation !== 'tanh' && c.activation !== 'erf')
    throw new MrlError(
      'invalid-config',
      `bert activation must be 'tanh' or 'erf' (GELU form), got '${String(c.activation)}'.`,
    );
}

interface Dense {
  w: tf.Variable; // [in, out]
  b: tf.Variable; // [out]
}
interface Norm {
  gamma: tf.Variable;
  beta: tf.Variable;
}
interface Block {
  q: Dense;
  k: Dense;
  v: Dense;
  o: Dense;
  ln1: Norm;
  ff1: Dense;
  ff2: Dense;
  ln2: Norm;
}

/** GELU, tanh form: core's `gelu` (one implementation for BERT and ViT). */
export { gelu };

/** Layer normalisation over the last axis: core's, with its closed-form gradient. */
export function layerNorm(x: tf.Tensor, norm: Norm, eps: number): tf.Tensor {
  return coreLayerNorm(x, norm.gamma as tf.Tensor1D, norm.beta as tf.Tensor1D, eps);
}

/**
 * BERT: token, position and segment embeddings, then post-LayerNorm transformer blocks with
 * padding-masked multi-head self-attention and a GELU feed-forward layer. `encodeTokens` gives
 * every token's state [B, T, d]; `encode` pools them into a sentence embedding [B, d] (the
 * `[CLS]` state or the masked mean).
 *
 * @example
 * ```ts
 * const bert = new BertEncoder(bertConfig('bert-tiny', { vocabSize: tokenizer.vocabSize }), createRandom(0));
 * const z = bert.encode({ ids, attentionMask }, false); // [B, 128]
 * ```
 */
export class BertEncoder implements Encoder<TokenBatch> {
  readonly embeddingDim: number;
  readonly tokenEmbedding: tf.Variable; // [V, d], also the tied MLM output
  readonly #position: tf.Variable; // [P, d]
  readonly #segment: tf.Variable; // [S, d]
  readonly #embeddingNorm: Norm;
  readonly #blocks: Block[] = [];
  /** Dropout masks come from this seed and a call counter: a run's masks are the same every time. */
  readonly #dropoutSeed: number;
  #dropoutCalls = 0;
  /** The pooler's dense layer [d, d], only when `pooling` is `pooler`. */
  readonly #pooler: Dense | null;

  constructor(
    readonly config: BertConfig,
    random: Random,
  ) {
    validateBertConfig(config);
    const d = config.embeddingDim;
    this.embeddingDim = d;
    const std = config.initializerRange ?? 0.02;
    const init = (shape: number[]): tf.Variable =>
      tf.variable(tf.truncatedNormal(shape, 0, std, 'float32', nextSeed(random)), true);
    const dense = (inDim: number, outDim: number): Dense => ({
      w: init([inDim, outDim]),
      b: tf.variable(tf.zeros([outDim]), true),
    });
    const norm = (): Norm => ({ gamma: tf.variable(tf.ones([d]), true), beta: tf.variable(tf.zeros([d]), true) });
    this.tokenEmbedding = init([config.vocabSize, d]);
    this.#position = init([config.maxPositions, d]);
    this.#segment = init([config.typeVocabSize, d]);
    this.#embeddingNorm = norm();
    for (let i = 0; i < config.numLayers; i++) {
      this.#blocks.push({
        q: dense(d, d),
        k: dense(d, d),
        v: dense(d, d),
        o: dense(d, d),
        ln1: norm(),
        ff1: dense(d, config.intermediateSize),
        ff2: dense(config.intermediateSize, d),
        ln2: norm(),
      });
    }
    this.#pooler = config.pooling === 'pooler' ? dense(d, d) : null;
    // Drawn after the weights, so that their initial values do not depend on it.
    this.#dropoutSeed = Math.floor(random() * 2 ** 30);
  }

  /** Token states [B, T, d] after the last block. */
  encodeTokens(batch: TokenBatch, training: boolean): tf.Tensor3D {
    return tf.tidy(() => this.#forward(batch, training, false)[0]!);
  }

  /**
   * The pooled sentence embedding [B, d] after each block, shallowest first (the last equals
   * {@link encode}): the layer axis of {@link Matryoshka2dLoss}.
   */
  encodeLayers(batch: TokenBatch, training: boolean): tf.Tensor2D[] {
    return tf.tidy(() => this.#forward(batch, training, true).map((states) => this.#pool(states, batch)));
  }

  /** Token states after the last block, or after every block when `everyBlock`. */
  #forward(batch: TokenBatch, training: boolean, everyBlock: boolean): tf.Tensor3D[] {
    const [b, t] = batch.ids.shape;
    const c = this.config;
    if (t > c.maxPositions) {
      throw new MrlError(
        'invalid-argument',
        `sequence length ${t} exceeds the model's maxPositions ${c.maxPositions}.`,
        'Lower the maximum sequence length.',
      );
    }
    if (batch.attentionMask.shape[0] !== b || batch.attentionMask.shape[1] !== t) {
      throw new MrlError(
        'invalid-argument',
        `attentionMask has shape [${batch.attentionMask.shape.join(', ')}] but ids have [${b}, ${t}].`,
      );
    }
    const d = c.embeddingDim;
    const heads = c.numHeads;
    const rate = training ? c.dropout : 0;
    const activation = geluOf(c.activation ?? 'tanh');
    // Seeded Philox masks (core's dropout): the same on every backend and thread count, drawn on
    // the addon's threads where it is built.
    const drop = (x: tf.Tensor): tf.Tensor =>
      rate > 0 ? dropout(x, rate, this.#dropoutSeed + this.#dropoutCalls++) : x;
    // The attention kernel applies the multiplier to the probabilities itself.
    const dropMultiplier = (shape: number[]): tf.Tensor | undefined =>
      rate === 0 ? undefined : dropoutMultiplier(shape, rate, this.#dropoutSeed + this.#dropoutCalls++);
    const linear = (x: tf.Tensor2D, layer: Dense): tf.Tensor2D => tf.add(tf.matMul(x, layer.w as tf.Tensor2D), layer.b);
    return tf.tidy(() => {
      const ids = tf.reshape(tf.cast(batch.ids, 'int32'), [b * t]) as tf.Tensor1D;
      const segments =
        batch.segmentIds === undefined
          ? tf.zeros([b * t], 'int32')
          : (tf.reshape(tf.cast(batch.segmentIds, 'int32'), [b * t]) as tf.Tensor1D);
      const tokens = gatherRows(this.tokenEmbedding as tf.Tensor2D, ids); // [B*T, d]
      const positions = tf.tile(tf.slice(this.#position, [0, 0], [t, d]), [b, 1]); // [B*T, d]
      const segs = gatherRows(this.#segment as tf.Tensor2D, segments as tf.Tensor1D);
      let x = drop(
        layerNorm(tf.add(tf.add(tokens, positions), segs), this.#embeddingNorm, c.layerNormEps),
      ) as tf.Tensor2D; // [B*T, d]
      // Additive mask: 0 where a key is a real token, -1e9 where it is padding. [B, T]
      const keyBias = tf.mul(tf.sub(1, tf.cast(batch.attentionMask, 'float32')), -1e9) as tf.Tensor2D;
      const states: tf.Tensor3D[] = [];
      for (const block of this.#blocks) {
        // A tidy per block: the kernels keep what the backward pass needs; the rest (products
        // before their bias, the unscaled scores) goes now, not when the whole forward pass ends.
        const input = x;
        x = tf.tidy(() => {
          let x = input;
          // q, k and v as one product on the three layers' weights side by side: [B*T, 3d], the
          // layout multiHeadAttention reads (q heads, then k, then v).
          const qkvW = tf.concat([block.q.w, block.k.w, block.v.w], 1) as tf.Tensor2D; // [d, 3d]
          const qkvB = tf.concat([block.q.b, block.k.b, block.v.b], 0);
          const qkv = tf.reshape(tf.add(tf.matMul(x, qkvW), qkvB), [b, t, 3 * d]) as tf.Tensor3D;
          const dropout = dropMultiplier([b, heads, t, t]) as tf.Tensor4D | undefined;
          const mixed = multiHeadAttention(qkv, heads, dropout === undefined ? { keyBias } : { keyBias, dropout });
          const context = tf.reshape(mixed, [b * t, d]) as tf.Tensor2D; // [B*T, d]
          x = layerNorm(tf.add(x, drop(linear(context, block.o))), block.ln1, c.layerNormEps) as tf.Tensor2D;
          const hidden = activation(linear(x, block.ff1)) as tf.Tensor2D;
          x = layerNorm(tf.add(x, drop(linear(hidden, block.ff2))), block.ln2, c.layerNormEps) as tf.Tensor2D;
          return x;
        });
        if (everyBlock) states.push(tf.reshape(x, [b, t, d]) as tf.Tensor3D);
      }
      return everyBlock ? states : [tf.reshape(x, [b, t, d]) as tf.Tensor3D];
    });
  }

  /** Pooled sentence embedding [B, d]. */
  encode(batch: TokenBatch, training: boolean): tf.Tensor2D {
    return tf.tidy(() => this.#pool(this.encodeTokens(batch, training), batch));
  }

  /** Sentence embedding [B, d] from token states, as `pooling` says. */
  #pool(states: tf.Tensor3D, batch: TokenBatch): tf.Tensor2D {
    return tf.tidy(() => {
      const pooling = this.config.pooling;
      if (pooling !== 'pooler' || this.#pooler === null)
        return poolTokens(states, batch.attentionMask, pooling === 'cls' ? 'cls' : 'mean');
      const first = poolTokens(states, batch.attentionMask, 'cls'); // [B, d]
      return tf.tanh(tf.add(tf.matMul(first, this.#pooler.w as tf.Tensor2D), this.#pooler.b)) as tf.Tensor2D;
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    out.set('embeddings/token', this.tokenEmbedding);
    out.set('embeddings/position', this.#position);
    out.set('embeddings/segment', this.#segment);
    out.set('embeddings/ln/gamma', this.#embeddingNorm.gamma);
    out.set('embeddings/ln/beta', this.#embeddingNorm.beta);
    this.#blocks.forEach((block, i) => {
      for (const name of ['q', 'k', 'v', 'o', 'ff1', 'ff2'] as const) {
        out.set(`layer${i}/${name}/w`, block[name].w);
        out.set(`layer${i}/${name}/b`, block[name].b);
      }
      for (const name of ['ln1', 'ln2'] as const) {
        out.set(`layer${i}/${name}/gamma`, block[name].gamma);
        out.set(`layer${i}/${name}/beta`, block[name].beta);
      }
    });
    if (this.#pooler !== null) {
      out.set('pooler/w', this.#pooler.w);
      out.set('pooler/b', this.#pooler.b);
    }
    return out;
  }

  dispose(): void {
    for (const v of this.variables().values()) v.dispose();
  }
}

/**
 * Sentence embedding [B, d] from token states [B, T, d]: the first (`[CLS]`) state or the masked
 * mean. (`pooler` needs the pooler's weights: {@link BertEncoder.encode} applies it.)
 */
export function poolTokens(
  states: tf.Tensor3D,
  attentionMask: tf.Tensor2D,
  pooling: Exclude<BertPooling, 'pooler'>,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, , d] = states.shape;
    if (pooling === 'cls') return tf.reshape(tf.slice(states, [0, 0, 0], [b, 1, d]), [b, d]) as tf.Tensor2D;
    const mask = tf.expandDims(tf.cast(attentionMask, 'float32'), 2); // [B, T, 1]
    const sum = tf.sum(tf.mul(states, mask), 1); // [B, d]
    return tf.div(sum, tf.maximum(tf.sum(mask, 1), 1)) as tf.Tensor2D;
  });
}

/**
 * Layer-wise learning-rate decay for fine-tuning a pretrained BERT (Clark et al. 2020, ELECTRA;
 * BEiT's layer ids): block i of L (1-based) trains at `decay^(L + 1 - i)` times the learning rate,
 * the embeddings at `decay^(L + 1)`, the pooler at 1. Keys are the encoder's variable names.
 *
 * @example bertLayerDecay(encoder, 0.8) // layer1/q/w -> 0.8^2 with 2 layers; embeddings/token -> 0.8^3
 */
export function bertLayerDecay(encoder: BertEncoder, decay: number): Map<string, number> {
  if (!(decay > 0 && decay <= 1))
    throw new MrlError('invalid-argument', `layer decay must be in (0, 1], got ${decay}.`);
  const layers = encoder.config.numLayers;
  const out = new Map<string, number>();
  for (const name of encoder.variables().keys()) {
    const block = /^layer(\d+)\//.exec(name);
    const id = name.startsWith('embeddings/') ? 0 : block !== null ? Number(block[1]) + 1 : layers + 1;
    out.set(name, decay ** (layers + 1 - id));
  }
  return out;
}

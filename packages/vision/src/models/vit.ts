import * as tf from '@tensorflow/tfjs';
import { MrlError, nextSeed, type Encoder, type EncoderConfig, type Random, type VariableMap } from '@mrl/core';
import { MultiHeadAttention } from './attention.js';
import { addVariables, disposeModule, gelu, LayerNorm, Linear, makeVariable, type Module } from './layers.js';

/** A Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") as data. */
export interface VitConfig extends EncoderConfig {
  family: 'vit';
  imageSize: number;
  patchSize: number;
  inputChannels: number;
  /** Token width D. */
  width: number;
  depth: number;
  heads: number;
  /** MLP hidden width = mlpRatio * D. */
  mlpRatio: number;
}

/** Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with GELU. */
class VitBlock implements Module {
  readonly norm1: LayerNorm;
  readonly attention: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(width: number, heads: number, mlpRatio: number, random: Random) {
    this.norm1 = new LayerNorm(width);
    this.attention = new MultiHeadAttention({ width, heads }, random);
    this.norm2 = new LayerNorm(width);
    this.fc1 = new Linear(width, Math.round(width * mlpRatio), random);
    this.fc2 = new Linear(Math.round(width * mlpRatio), width, random);
  }

  apply(x: tf.Tensor3D): tf.Tensor3D {
    // A tidy per block: what the backward pass needs is saved by the kernels; the rest (a product
    // before its bias, say) goes now, not when the whole encoder's tidy ends.
    return tf.tidy(() => {
      const a = tf.add(x, this.attention.apply(this.norm1.apply(x) as tf.Tensor3D)); // [B, T, D]
      const m = this.fc2.apply(gelu(this.fc1.apply(this.norm2.apply(a))));
      return tf.add(a, m) as tf.Tensor3D;
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    addVariables(out, 'norm1', this.norm1);
    addVariables(out, 'attn', this.attention);
    addVariables(out, 'norm2', this.norm2);
    addVariables(out, 'mlp/fc1', this.fc1);
    addVariables(out, 'mlp/fc2', this.fc2);
    return out;
  }
}

export function validateVitConfig(config: VitConfig): void {
  const where = `vit config '${config.architecture}'`;
  for (const field of ['embeddingDim', 'imageSize', 'patchSize', 'inputChannels', 'width', 'depth', 'heads'] as const) {
    const v = config[field];
    if (!Number.isInteger(v) || v < 1)
      throw new MrlError('invalid-config', `${where}: ${field} must be a positive integer, got ${v}.`);
  }
  if (config.imageSize % config.patchSize !== 0) {
    throw new MrlError(
      'invalid-config',
      `${where}: imageSize ${config.imageSize} is not a multiple of patchSize ${config.patchSize}.`,
    );
  }
  if (config.width % config.heads !== 0)
    throw new MrlError('invalid-config', `${where}: width ${config.width} is not a multiple of heads ${config.heads}.`);
  if (!(config.mlpRatio > 0))
    throw new MrlError('invalid-config', `${where}: mlpRatio must be > 0, got ${config.mlpRatio}.`);
}

/**
 * ViT image encoder: non-overlapping patches -> linear patch embedding, a learned class token,
 * learned position embeddings, pre-norm blocks, final LayerNorm of the class token. When
 * `embeddingDim` differs from `width`, a linear projection `proj` maps it to d.
 */
export class VitEncoder implements Encoder<tf.Tensor> {
  readonly embeddingDim: number;
  readonly patchEmbed: tf.Variable; // [p, p, C, D] conv kernel with stride p
  readonly patchBias: tf.Variable;
  readonly classToken: tf.Variable; // [1, 1, D]
  readonly positions: tf.Variable; // [1, 1 + T, D]
  readonly blocks: VitBlock[];
  readonly norm: LayerNorm;
  readonly projection: Linear | null;
  readonly tokens: number;

  constructor(
    readonly config: VitConfig,
    random: Random,
  ) {
    validateVitConfig(config);
    const { patchSize: p, inputChannels: c, width: d } = config;
    this.embeddingDim = config.embeddingDim;
    this.tokens = (config.imageSize / p) ** 2;
    const fanIn = p * p * c;
    this.patchEmbed = makeVariable(
      tf.truncatedNormal([p, p, c, d], 0, Math.sqrt(1 / fanIn), 'float32', nextSeed(random)),
      true,
    );
    this.patchBias = makeVariable(tf.zeros([d]), true);
    this.classToken = makeVariable(tf.truncatedNormal([1, 1, d], 0, 0.02, 'float32', nextSeed(random)), true);
    this.positions = makeVariable(
      tf.truncatedNormal([1, 1 + this.tokens, d], 0, 0.02, 'float32', nextSeed(random)),
      true,
    );
    this.blocks = Array.from({ length: config.depth }, () => new VitBlock(d, config.heads, config.mlpRatio, random));
    this.norm = new LayerNorm(d);
    this.projection = d === config.embeddingDim ? null : new Linear(d, config.embeddingDim, random);
  }

  encode(input: tf.Tensor, _training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const { imageSize: s, inputChannels: c, width: d } = this.config;
      if (input.rank !== 4 || input.shape[1] !== s || input.shape[2] !== s || input.shape[3] !== c) {
        throw new MrlError(
          'invalid-argument',
          `${this.config.architecture} expects images [N, ${s}, ${s}, ${c}], got [${input.shape.join(', ')}].`,
        );
      }
      const n = input.shape[0]!;
      const patches = tf.add(
        tf.conv2d(input as tf.Tensor4D, this.patchEmbed as tf.Tensor4D, this.config.patchSize, 'valid'),
        this.patchBias,
      ); // [N, s/p, s/p, D]
      const tokens = tf.reshape(patches, [n, this.tokens, d]); // [N, T, D]
      const cls = tf.tile(this.classToken, [n, 1, 1]); // [N, 1, D]
      let x = tf.add(tf.concat([cls, tokens], 1), this.positions) as tf.Tensor3D; // [N, 1 + T, D]
      for (const block of this.blocks) x = block.apply(x);
      const pooled = tf.reshape(tf.slice(this.norm.apply(x), [0, 0, 0], [n, 1, d]), [n, d]) as tf.Tensor2D; // [N, D]
      return this.projection === null ? pooled : (this.projection.apply(pooled) as tf.Tensor2D); // [N, d]
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map([
      ['patch/w', this.patchEmbed],
      ['patch/b', this.patchBias],
      ['cls_token', this.classToken],
      ['pos_embed', this.positions],
    ]);
    this.blocks.forEach((block, i) => addVariables(out, `block${i + 1}`, block));
    addVariables(out, 'norm', this.norm);
    if (this.projection !== null) addVariables(out, 'proj', this.projection);
    return out;
  }

  dispose(): void {
    disposeModule(this);
  }
}

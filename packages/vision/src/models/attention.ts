import * as tf from '@tensorflow/tfjs';
import {
  assignVariables,
  MrlError,
  multiHeadAttention,
  type NamedArray,
  type Random,
  type VariableMap,
} from '@mrl/core';
import { Linear, type Module } from './layers.js';

export interface AttentionConfig {
  /** Model width D; split into `heads` heads of D / heads. */
  width: number;
  heads: number;
}

/**
 * Multi-head self-attention (Vaswani et al. 2017), softmax(q k^T / sqrt(d_h)) v per head.
 * tfjs-layers 4.22 has no attention layer, so this is a custom module on its own variables with a
 * stable save format: `qkv/w` [D, 3D], `qkv/b` [3D], `out/w` [D, D], `out/b` [D]; see
 * {@link MultiHeadAttention.weights} and {@link MultiHeadAttention.loadWeights}. Its gradient is
 * checked numerically in the tests.
 */
export class MultiHeadAttention implements Module {
  readonly qkv: Linear;
  readonly out: Linear;
  readonly headWidth: number;

  constructor(
    readonly config: AttentionConfig,
    random: Random,
  ) {
    const { width, heads } = config;
    if (!Number.isInteger(heads) || heads < 1 || !Number.isInteger(width) || width % heads !== 0) {
      throw new MrlError('invalid-config', `attention width ${width} must be a positive multiple of heads ${heads}.`);
    }
    this.headWidth = width / heads;
    this.qkv = new Linear(width, 3 * width, random);
    this.out = new Linear(width, width, random);
  }

  /** [B, T, D] -> [B, T, D] */
  apply(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const qkv = this.qkv.apply(x) as tf.Tensor3D; // [B, T, 3D]: q, k, v heads along the last axis
      return this.out.apply(multiHeadAttention(qkv, this.config.heads)) as tf.Tensor3D; // [B, T, D]
    });
  }

  variables(): VariableMap {
    return new Map([
      ['qkv/w', this.qkv.w],
      ['qkv/b', this.qkv.b],
      ['out/w', this.out.w],
      ['out/b', this.out.b],
    ]);
  }

  /** The layer's weights under its save names, ready for `writeSafetensors`. */
  weights(): Map<string, NamedArray> {
    const out = new Map<string, NamedArray>();
    for (const [name, v] of this.variables())
      out.set(name, { dtype: 'F32', shape: [...v.shape], data: v.dataSync() as Float32Array });
    return out;
  }

  /** Loads weights saved by {@link weights}; `source` names the file in errors. */
  loadWeights(weights: ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>, source = 'attention weights'): void {
    assignVariables(this.variables(), weights, { source });
  }
}

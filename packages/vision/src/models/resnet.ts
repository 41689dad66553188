import * as tf from '@tensorflow/tfjs';
import { addRelu, MrlError, type Encoder, type EncoderConfig, type Random, type VariableMap } from '@mrl/core';
import { addVariables, BatchNorm, Conv2d, disposeModule, Linear, type Module } from './layers.js';

/**
 * A ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition") as data. Shapes:
 * input [N, H, W, inputChannels] -> stem -> stages -> global average pool [N, width] ->
 * (projection) [N, d].
 */
export interface ResNetConfig extends EncoderConfig {
  family: 'resnet';
  /** `basic`: two 3x3 convs; `bottleneck`: 1x1, 3x3, 1x1 with 4x expansion. */
  block: 'basic' | 'bottleneck';
  /** `cifar`: one 3x3 conv, stride 1; `imagenet`: 7x7 conv stride 2 + 3x3 max-pool stride 2. */
  stem: 'cifar' | 'imagenet';
  /**
   * Stride of the `cifar` stem's 3x3 conv (default 1). 2 halves a 28 px image before the first
   * stage, which lets a small ResNet end in a wide stage at a quarter of the compute.
   */
  stemStride?: number;
  stemWidth: number;
  /** Blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18. */
  layers: number[];
  /** Block width per stage (the bottleneck's inner width); stage i > 0 starts with stride 2. */
  widths: number[];
  inputChannels: number;
  /** Batch-norm running-average momentum (PyTorch convention). */
  bnMomentum?: number;
  /**
   * `auto` (default): a linear projection to d only when d differs from the last stage's width;
   * `always`: a linear embedding layer at every d, so models of different d (MRL at d, FF at m)
   * share one shape and the embedding can take negative values, as a pooled ReLU map cannot.
   */
  projection?: 'auto' | 'always';
  /**
   * `same` (default): TF's 'same' padding; `torch`: PyTorch's symmetric `kernel // 2` padding on
   * every conv and 1 on the stem's max-pool, as torchvision ResNets are trained with (the two
   * differ at stride 2). Imported torchvision weights need `torch`.
   */
  padding?: 'same' | 'torch';
}

/** Makes a conv of the model's padding convention: (kernel, inputs, outputs, stride). */
type ConvFactory = (kernel: number, inputs: number, outputs: number, stride: number) => Conv2d;

interface Block extends Module {
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
}

class BasicBlock implements Block {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm;
  readonly shortcut: { conv: Conv2d; bn: BatchNorm } | null;

  constructor(inputs: number, width: number, stride: number, momentum: number, conv: ConvFactory) {
    this.conv1 = conv(3, inputs, width, stride);
    this.bn1 = new BatchNorm(width, momentum);
    this.conv2 = conv(3, width, width, 1);
    this.bn2 = new BatchNorm(width, momentum);
    this.shortcut =
      stride !== 1 || inputs !== width
        ? { conv: conv(1, inputs, width, stride), bn: new BatchNorm(width, momentum) }
        : null;
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    // A tidy per block: what the backward pass needs is saved by the kernels; the rest goes now.
    return tf.tidy(() => {
      let h = this.bn1.apply(this.conv1.apply(x), training, true);
      h = this.bn2.apply(this.conv2.apply(h), training);
      const skip = this.shortcut === null ? x : this.shortcut.bn.apply(this.shortcut.conv.apply(x), training);
      return addRelu(h, skip);
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    addVariables(out, 'conv1', this.conv1);
    addVariables(out, 'bn1', this.bn1);
    addVariables(out, 'conv2', this.conv2);
    addVariables(out, 'bn2', this.bn2);
    if (this.shortcut !== null) {
      addVariables(out, 'shortcut/conv', this.shortcut.conv);
      addVariables(out, 'shortcut/bn', this.shortcut.bn);
    }
    return out;
  }
}

class BottleneckBlock implements Block {
  static readonly expansion = 4;
  readonly convs: Conv2d[];
  readonly bns: BatchNorm[];
  readonly shortcut: { conv: Conv2d; bn: BatchNorm } | null;

  constructor(inputs: number, width: number, stride: number, momentum: number, conv: ConvFactory) {
    const out = width * BottleneckBlock.expansion;
    // Stride on the 3x3 conv (torchvision's "ResNet v1.5").
    this.convs = [conv(1, inputs, width, 1), conv(3, width, width, stride), conv(1, width, out, 1)];
    this.bns = [new BatchNorm(width, momentum), new BatchNorm(width, momentum), new BatchNorm(out, momentum)];
    this.shortcut =
      stride !== 1 || inputs !== out ? { conv: conv(1, inputs, out, stride), bn: new BatchNorm(out, momentum) } : null;
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    // A tidy per block, as in the basic block.
    return tf.tidy(() => {
      let h = x;
      this.convs.forEach((conv, i) => {
        h = this.bns[i]!.apply(conv.apply(h), training, i < 2);
      });
      const skip = this.shortcut === null ? x : this.shortcut.bn.apply(this.shortcut.conv.apply(x), training);
      return addRelu(h, skip);
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    this.convs.forEach((c, i) => addVariables(out, `conv${i + 1}`, c));
    this.bns.forEach((b, i) => addVariables(out, `bn${i + 1}`, b));
    if (this.shortcut !== null) {
      addVariables(out, 'shortcut/conv', this.shortcut.conv);
      addVariables(out, 'shortcut/bn', this.shortcut.bn);
    }
    return out;
  }
}

export function validateResNetConfig(config: ResNetConfig): void {
  const where = `resnet config '${config.architecture}'`;
  if (config.block !== 'basic' && config.block !== 'bottleneck')
    throw new MrlError(
      'invalid-config',
      `${where}: block must be 'basic' or 'bottleneck', got '${String(config.block)}'.`,
    );
  if (config.stem !== 'cifar' && config.stem !== 'imagenet')
    throw new MrlError('invalid-config', `${where}: stem must be 'cifar' or 'imagenet', got '${String(config.stem)}'.`);
  if (!Array.isArray(config.layers) || config.layers.length === 0 || config.layers.length !== config.widths?.length) {
    throw new MrlError(
      'invalid-config',
      `${where}: layers [${String(config.layers)}] and widths [${String(config.widths)}] must be non-empty lists of the same length.`,
    );
  }
  for (const [field, values] of [
    ['layers', config.layers],
    ['widths', config.widths],
  ] as const) {
    for (const v of values)
      if (!Number.isInteger(v) || v < 1)
        throw new MrlError('invalid-config', `${where}: ${field} must hold positive integers, got ${v}.`);
  }
  for (const field of ['embeddingDim', 'stemWidth', 'inputChannels'] as const) {
    const v = config[field];
    if (!Number.isInteger(v) || v < 1)
      throw new MrlError('invalid-config', `${where}: ${field} must be a positive integer, got ${v}.`);
  }
  const stride = config.stemStride ?? 1;
  if (!Number.isInteger(stride) || stride < 1 || stride > 4)
    throw new MrlError('invalid-config', `${where}: stemStride must be 1, 2, 3 or 4, got ${stride}.`);
  if (stride !== 1 && config.stem !== 'cifar')
    throw new MrlError(
      'invalid-config',
      `${where}: stemStride applies to the 'cifar' stem only (the 'imagenet' stem is fixed at stride 2 + max-pool).`,
    );
  if (config.padding !== undefined && config.padding !== 'same' && config.padding !== 'torch')
    throw new MrlError(
      'invalid-config',
      `${where}: padding must be 'same' or 'torch', got '${String(config.padding)}'.`,
    );
  if (config.projection !== undefined && config.projection !== 'auto' && config.projection !== 'always') {
    throw new MrlError(
      'invalid-config',
      `${where}: projection must be 'auto' or 'always', got '${String(config.projection)}'.`,
    );
  }
}

/**
 * ResNet image encoder. The embedding is the global-average-pooled feature of the last stage;
 * when `embeddingDim` differs from that width (e.g. d=128 on a 64-wide ResNet), or `projection`
 * is `always`, a linear projection `proj` maps it to d, otherwise the pooled feature itself is
 * the embedding.
 *
 * @example
 * ```ts
 * const encoder = createVisionEncoder('resnet18-cifar', { embeddingDim: 512 }, createRandom(0));
 * const z = encoder.encode(images, true); // [N, 512]
 * ```
 */
export class ResNetEncoder implements Encoder<tf.Tensor> {
  readonly embeddingDim: number;
  readonly featureWidth: number;
  readonly stemConv: Conv2d;
  readonly stemBn: BatchNorm;
  readonly stages: Block[][];
  readonly projection: Linear | null;

  constructor(
    readonly config: ResNetConfig,
    random: Random,
  ) {
    validateResNetConfig(config);
    const momentum = config.bnMomentum ?? 0.1;
    this.embeddingDim = config.embeddingDim;
    const torch = config.padding === 'torch';
    const conv: ConvFactory = (kernel, inputs, outputs, stride) =>
      new Conv2d(kernel, inputs, outputs, stride, random, torch ? kernel >> 1 : 'same');
    this.stemConv =
      config.stem === 'cifar'
        ? conv(3, config.inputChannels, config.stemWidth, config.stemStride ?? 1)
        : conv(7, config.inputChannels, config.stemWidth, 2);
    this.stemBn = new BatchNorm(config.stemWidth, momentum);
    const Block = config.block === 'basic' ? BasicBlock : BottleneckBlock;
    let channels = config.stemWidth;
    this.stages = config.layers.map((count, s) =>
      Array.from({ length: count }, (_, b) => {
        const width = config.widths[s]!;
        const block = new Block(channels, width, s > 0 && b === 0 ? 2 : 1, momentum, conv);
        channels = width * Block.expansion;
        return block;
      }),
    );
    this.featureWidth = channels;
    this.projection =
      channels === config.embeddingDim && config.projection !== 'always'
        ? null
        : new Linear(channels, config.embeddingDim, random);
  }

  encode(input: tf.Tensor, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      if (input.rank !== 4 || input.shape[3] !== this.config.inputChannels) {
        throw new MrlError(
          'invalid-argument',
          `${this.config.architecture} expects images [N, H, W, ${this.config.inputChannels}], got [${input.shape.join(', ')}].`,
        );
      }
      let x = this.stemBn.apply(this.stemConv.apply(input as tf.Tensor4D), training, true); // [N, H', W', stemWidth]
      if (this.config.stem === 'imagenet') x = tf.maxPool(x, 3, 2, this.config.padding === 'torch' ? 1 : 'same');
      for (const stage of this.stages) for (const block of stage) x = block.apply(x, training);
      const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D; // [N, featureWidth]
      return this.projection === null ? pooled : (this.projection.apply(pooled) as tf.Tensor2D); // [N, d]
    });
  }

  variables(): VariableMap {
    const out: VariableMap = new Map();
    addVariables(out, 'stem/conv', this.stemConv);
    addVariables(out, 'stem/bn', this.stemBn);
    this.stages.forEach((stage, s) =>
      stage.forEach((block, b) => addVariables(out, `stage${s + 1}/block${b + 1}`, block)),
    );
    if (this.projection !== null) addVariables(out, 'proj', this.projection);
    return out;
  }

  dispose(): void {
    disposeModule(this);
  }
}

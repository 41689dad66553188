import * as tf from '@tensorflow/tfjs';
import { createRandom, MrlError, readSafetensors, type NamedArray, type Random } from '@mrl/core';
import { ResNetEncoder, type ResNetConfig } from './resnet.js';

type Tensors = ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>;

/** Buffers and heads of a torchvision state dict that the encoder does not use. */
const DROPPED = [/\.num_batches_tracked$/, /^fc\./];

const fix = 'Pass a torchvision ResNet state dict (torchvision.models.resnet18/34/50/101/152) saved with safetensors.';

/** torch conv [out, in, kh, kw] -> TF.js NHWC filter [kh, kw, in, out]. */
function convToHwio(data: ArrayLike<number>, shape: number[]): Float32Array {
  const [o, i, h, w] = shape as [number, number, number, number];
  const out = new Float32Array(o * i * h * w);
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((y * w + x) * i + b) * o + a] = data[((a * i + b) * h + y) * w + x]!;
  return out;
}

/**
 * The ResNet a torchvision state dict describes, read from its tensor shapes: block type
 * (`layer1.0.conv3` only in bottlenecks), blocks per stage, stage widths, stem width and input
 * channels. The stem must be torchvision's 7x7 conv (+ max-pool).
 *
 * @example resnetConfigFromTorchvision((await readSafetensors('resnet18.safetensors')).tensors)
 */
export function resnetConfigFromTorchvision(tensors: Tensors, source = 'the state dict'): ResNetConfig {
  const stem = tensors.get('conv1.weight');
  if (stem === undefined || stem.shape.length !== 4) {
    throw new MrlError(
      'unsupported',
      `${source} has no 4-D 'conv1.weight': it is not a torchvision ResNet state dict.`,
      fix,
    );
  }
  const [stemWidth, inputChannels, kh] = stem.shape as [number, number, number, number];
  if (kh !== 7) {
    throw new MrlError(
      'unsupported',
      `${source}: 'conv1.weight' is a ${kh}x${kh} conv; torchvision ResNets have a 7x7 stem.`,
      fix,
    );
  }
  const block = tensors.has('layer1.0.conv3.weight') ? 'bottleneck' : 'basic';
  const layers: number[] = [];
  const widths: number[] = [];
  for (let s = 1; tensors.has(`layer${s}.0.conv1.weight`); s++) {
    let count = 0;
    while (tensors.has(`layer${s}.${count}.conv1.weight`)) count++;
    layers.push(count);
    widths.push(tensors.get(`layer${s}.0.conv1.weight`)!.shape[0]!);
  }
  if (layers.length === 0) throw new MrlError('unsupported', `${source} has no 'layer1.0.conv1.weight'.`, fix);
  const featureWidth = widths.at(-1)! * (block === 'bottleneck' ? 4 : 1);
  return {
    architecture: `torchvision-resnet-${block}-${layers.join('-')}`,
    family: 'resnet',
    embeddingDim: featureWidth,
    block,
    stem: 'imagenet',
    stemWidth,
    layers,
    widths,
    inputChannels,
    padding: 'torch',
  };
}

/** Each ResNetEncoder variable name -> its torchvision state-dict name. */
export function torchvisionResNetNames(encoder: ResNetEncoder): Map<string, string> {
  const out = new Map<string, string>();
  const bn = (ours: string, theirs: string): void => {
    out.set(`${ours}/gamma`, `${theirs}.weight`);
    out.set(`${ours}/beta`, `${theirs}.bias`);
    out.set(`${ours}/running_mean`, `${theirs}.running_mean`);
    out.set(`${ours}/running_var`, `${theirs}.running_var`);
  };
  out.set('stem/conv/w', 'conv1.weight');
  bn('stem/bn', 'bn1');
  const convs = encoder.config.block === 'bottleneck' ? 3 : 2;
  encoder.stages.forEach((stage, s) =>
    stage.forEach((block, b) => {
      const ours = `stage${s + 1}/block${b + 1}`;
      const theirs = `layer${s + 1}.${b}`;
      for (let c = 1; c <= convs; c++) {
        out.set(`${ours}/conv${c}/w`, `${theirs}.conv${c}.weight`);
        bn(`${ours}/bn${c}`, `${theirs}.bn${c}`);
      }
      if (block.variables().has('shortcut/conv/w')) {
        out.set(`${ours}/shortcut/conv/w`, `${theirs}.downsample.0.weight`);
        bn(`${ours}/shortcut/bn`, `${theirs}.downsample.1`);
      }
    }),
  );
  return out;
}

/**
 * Loads a torchvision ResNet state dict into `encoder` (built with `padding: 'torch'`): convs
 * transposed to NHWC, batch-norm statistics included; `fc` (the ImageNet classifier) and
 * `num_batches_tracked` are dropped, and a projection, if the encoder has one, keeps its
 * initial weights. Missing, extra and mis-shaped tensors are named.
 */
export function assignTorchvisionResNet(encoder: ResNetEncoder, tensors: Tensors, source: string): void {
  const variables = encoder.variables();
  const names = torchvisionResNetNames(encoder);
  const values = new Map<string, Float32Array>();
  for (const [ours, theirs] of names) {
    const variable = variables.get(ours)!;
    const tensor = tensors.get(theirs);
    const isConv = variable.rank === 4;
    const [kh, kw, i, o] = variable.shape as [number, number, number, number];
    const expected = isConv ? [o, i, kh, kw] : variable.shape;
    if (tensor === undefined) {
      throw new MrlError(
        'corrupt-file',
        `${source} has no tensor '${theirs}' (shape [${expected.join(', ')}]) for the encoder's ${ours}.`,
        fix,
      );
    }
    if (tensor.shape.join(',') !== expected.join(',')) {
      throw new MrlError(
        'corrupt-file',
        `${source}: tensor '${theirs}' has shape [${tensor.shape.join(', ')}], the encoder needs [${expected.join(', ')}].`,
        fix,
      );
    }
    for (let k = 0; k < tensor.data.length; k++) {
      if (!Number.isFinite(tensor.data[k]!)) {
        throw new MrlError(
          'corrupt-file',
          `${source}: tensor '${theirs}' holds ${tensor.data[k]} at flat index ${k}.`,
          'Re-export the weights; a model with NaN or infinite weights cannot be fine-tuned.',
        );
      }
    }
    values.set(ours, isConv ? convToHwio(tensor.data, tensor.shape) : Float32Array.from(tensor.data));
  }
  const used = new Set(names.values());
  const extra = [...tensors.keys()].filter((k) => !used.has(k) && !DROPPED.some((re) => re.test(k)));
  if (extra.length > 0) {
    throw new MrlError(
      'corrupt-file',
      `${source} has ${extra.length} tensor(s) the ResNet encoder does not use: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}.`,
      fix,
    );
  }
  for (const [ours, data] of values) {
    const variable = variables.get(ours)!;
    tf.tidy(() => variable.assign(tf.tensor(data, variable.shape, 'float32')));
  }
}

/**
 * A torchvision ResNet (e.g. `resnet18`'s or `resnet50`'s state dict saved as safetensors, F32
 * or F16) as a trainable {@link ResNetEncoder}: the architecture is read from the tensor shapes,
 * the embedding is the pooled last-stage feature (512 for ResNet-18, 2048 for ResNet-50), or a
 * fresh linear projection to `embeddingDim` when that differs. Inputs are NHWC images
 * normalised as the weights were trained (ImageNet mean/std for torchvision's).
 *
 * @example
 * ```ts
 * // python: safetensors.torch.save_file(torchvision.models.resnet18(weights='DEFAULT').state_dict(), 'r18.safetensors')
 * const encoder = await loadTorchvisionResNet('r18.safetensors');
 * const z = encoder.encode(images, false); // [N, 512]
 * ```
 */
export async function loadTorchvisionResNet(
  file: string,
  options: { embeddingDim?: number; random?: Random } = {},
): Promise<ResNetEncoder> {
  const { tensors } = await readSafetensors(file);
  const config = resnetConfigFromTorchvision(tensors, file);
  if (options.embeddingDim !== undefined) config.embeddingDim = options.embeddingDim;
  const encoder = new ResNetEncoder(config, options.random ?? createRandom(0));
  try {
    assignTorchvisionResNet(encoder, tensors, file);
  } catch (e) {
    encoder.dispose();
    throw e;
  }
  return encoder;
}

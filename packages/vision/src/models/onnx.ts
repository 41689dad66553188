import { EXPORT_OPSET, nestingMetadata, OnnxGraph } from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import type { BatchNorm, Conv2d, LayerNorm, Linear } from './layers.js';
import type { ResNetEncoder } from './resnet.js';
import type { VitEncoder } from './vit.js';

/** TF.js NHWC filter [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
function hwioToOihw(w: tf.Variable): { data: Float32Array; dims: number[] } {
  const [h, k, i, o] = w.shape as [number, number, number, number];
  const src = w.dataSync() as Float32Array;
  const out = new Float32Array(src.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < k; x++)
      for (let c = 0; c < i; c++)
        for (let f = 0; f < o; f++) out[((f * i + c) * h + y) * k + x] = src[((y * k + x) * i + c) * o + f]!;
  return { data: out, dims: [o, i, h, k] };
}

/**
 * A {@link ResNetEncoder} as an ONNX graph (opset {@link EXPORT_OPSET}), in inference mode (batch
 * norm with the running statistics): `input` [batch, H, W, C] float32 NHWC, as mrl feeds images,
 * transposed to NCHW inside; `embedding` [batch, d]. TF 'same' padding becomes ONNX
 * `auto_pad: SAME_UPPER` (the same extra row at the end); the `torch` option explicit pads.
 * The nesting dims are in the metadata.
 *
 * @example
 * ```ts
 * await writeFileAtomically('model.onnx', resnetOnnxModel(encoder, [8, 16, 32, 64]));
 * ```
 */
export function resnetOnnxModel(encoder: ResNetEncoder, dims: readonly number[]): Uint8Array {
  const metadata = nestingMetadata(dims, encoder.embeddingDim);
  const g = new OnnxGraph('mrl-resnet');
  let count = 0;
  const conv = (x: string, layer: Conv2d): string => {
    const { data, dims: shape } = hwioToOihw(layer.w);
    const w = g.initializer(`conv${count++}`, data, shape);
    const pad = layer.padding;
    const padding =
      typeof pad === 'number'
        ? { pads: [pad, pad, pad, pad] }
        : pad === 'same'
          ? {} // SAME_UPPER below
          : { pads: [0, 0, 0, 0] };
    const attrs = { kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride], ...padding };
    return g.op('Conv', [x, w], pad === 'same' ? { ...attrs, auto_pad: 'SAME_UPPER' } : attrs);
  };
  const norm = (x: string, bn: BatchNorm): string => {
    const v = (name: string, t: tf.Variable): string =>
      g.initializer(`bn${count}/${name}`, t.dataSync() as Float32Array, t.shape);
    const out = g.op(
      'BatchNormalization',
      [x, v('gamma', bn.gamma), v('beta', bn.beta), v('mean', bn.runningMean), v('var', bn.runningVar)],
      { epsilon: bn.epsilon },
    );
    count++;
    return out;
  };
  const c = encoder.config;
  const input = g.input('input', 'float32', ['batch', 'height', 'width', c.inputChannels]);
  let x = g.op('Relu', [
    norm(conv(g.op('Transpose', [input], { perm: [0, 3, 1, 2] }), encoder.stemConv), encoder.stemBn),
  ]);
  if (c.stem === 'imagenet') {
    const pool = { kernel_shape: [3, 3], strides: [2, 2] };
    x =
      c.padding === 'torch'
        ? g.op('MaxPool', [x], { ...pool, pads: [1, 1, 1, 1] })
        : g.op('MaxPool', [x], { ...pool, auto_pad: 'SAME_UPPER' });
  }
  for (const stage of encoder.stages) {
    for (const block of stage) {
      const b = block as unknown as {
        conv1?: Conv2d;
        bn1?: BatchNorm;
        conv2?: Conv2d;
        bn2?: BatchNorm;
        convs?: Conv2d[];
        bns?: BatchNorm[];
        shortcut: { conv: Conv2d; bn: BatchNorm } | null;
      };
      const convs = b.convs ?? [b.conv1!, b.conv2!];
      const bns = b.bns ?? [b.bn1!, b.bn2!];
      let h = x;
      convs.forEach((layer, i) => {
        h = norm(conv(h, layer), bns[i]!);
        if (i < convs.length - 1) h = g.op('Relu', [h]);
      });
      const skip = b.shortcut === null ? x : norm(conv(x, b.shortcut.conv), b.shortcut.bn);
      x = g.op('Relu', [g.op('Add', [h, skip])]);
    }
  }
  let z = g.op('Flatten', [g.op('GlobalAveragePool', [x])], { axis: 1 }); // [batch, featureWidth]
  if (encoder.projection !== null) {
    const p = encoder.projection;
    z = g.op('Add', [
      g.op('MatMul', [z, g.initializer('proj/w', p.w.dataSync() as Float32Array, p.w.shape)]),
      g.initializer('proj/b', p.b.dataSync() as Float32Array, p.b.shape),
    ]);
  }
  g.output(z, 'embedding', 'float32', ['batch', encoder.embeddingDim]);
  return g.encode(
    { ...metadata, 'mrl.architecture': c.architecture, 'mrl.input_layout': 'NHWC' },
    `mrl Matryoshka ResNet (d=${encoder.embeddingDim}), ONNX opset ${EXPORT_OPSET}.`,
  );
}

const TWO_SQRT_2_OVER_PI = 2 * Math.sqrt(2 / Math.PI);

/**
 * A {@link VitEncoder} as an ONNX graph (opset {@link EXPORT_OPSET}): `input` [batch, S, S, C]
 * NHWC -> patch conv -> class token + positions -> pre-LN blocks (tanh GELU, as mrl's) -> final
 * LayerNorm -> class token (-> projection) = `embedding` [batch, d], nesting dims in the metadata.
 *
 * @example
 * ```ts
 * await writeFileAtomically('model.onnx', vitOnnxModel(encoder, [8, 16, 32, 64]));
 * ```
 */
export function vitOnnxModel(encoder: VitEncoder, dims: readonly number[]): Uint8Array {
  const metadata = nestingMetadata(dims, encoder.embeddingDim);
  const c = encoder.config;
  const d = c.width;
  const heads = c.heads;
  const dh = d / heads;
  const g = new OnnxGraph('mrl-vit');
  const constant = (name: string, t: tf.Variable): string => g.initializer(name, t.dataSync() as Float32Array, t.shape);
  const linear = (x: string, layer: Linear, name: string): string =>
    g.op('Add', [g.op('MatMul', [x, constant(`${name}/w`, layer.w)]), constant(`${name}/b`, layer.b)]);
  const norm = (x: string, layer: LayerNorm, name: string): string =>
    g.op('LayerNormalization', [x, constant(`${name}/gamma`, layer.gamma), constant(`${name}/beta`, layer.beta)], {
      axis: -1,
      epsilon: layer.epsilon,
    });
  const input = g.input('input', 'float32', ['batch', c.imageSize, c.imageSize, c.inputChannels]);
  const { data, dims: filter } = hwioToOihw(encoder.patchEmbed);
  const patches = g.op(
    'Conv',
    [
      g.op('Transpose', [input], { perm: [0, 3, 1, 2] }),
      g.initializer('patch/w', data, filter),
      constant('patch/b', encoder.patchBias),
    ],
    {
      kernel_shape: [c.patchSize, c.patchSize],
      strides: [c.patchSize, c.patchSize],
      pads: [0, 0, 0, 0],
    },
  ); // [B, D, S/p, S/p]
  const tokens = g.op('Reshape', [
    g.op('Transpose', [patches], { perm: [0, 2, 3, 1] }),
    g.ints([0, encoder.tokens, d]),
  ]); // [B, T, D]
  const batch = g.op('Slice', [g.op('Shape', [input]), g.ints([0]), g.ints([1])]); // [1]
  const cls = g.op('Expand', [
    constant('cls_token', encoder.classToken),
    g.op('Concat', [batch, g.ints([1, d])], { axis: 0 }),
  ]);
  let x = g.op('Add', [g.op('Concat', [cls, tokens], { axis: 1 }), constant('pos_embed', encoder.positions)]); // [B, 1+T, D]
  const scale = g.scalar(1 / Math.sqrt(dh));
  encoder.blocks.forEach((block, i) => {
    const at = `block${i + 1}`;
    const qkv = g.op(
      'Transpose',
      [
        g.op('Reshape', [
          linear(norm(x, block.norm1, `${at}/norm1`), block.attention.qkv, `${at}/qkv`),
          g.ints([0, 0, 3 * heads, dh]),
        ]),
      ],
      {
        perm: [0, 2, 1, 3],
      },
    ); // [B, 3H, T, dh]
    const part = (j: number): string =>
      g.op('Slice', [qkv, g.ints([j * heads]), g.ints([(j + 1) * heads]), g.ints([1])]);
    const scores = g.op('Mul', [
      g.op('MatMul', [part(0), g.op('Transpose', [part(1)], { perm: [0, 1, 3, 2] })]),
      scale,
    ]);
    const mixed = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), part(2)]); // [B, H, T, dh]
    const merged = g.op('Reshape', [g.op('Transpose', [mixed], { perm: [0, 2, 1, 3] }), g.ints([0, 0, d])]);
    x = g.op('Add', [x, linear(merged, block.attention.out, `${at}/out`)]);
    const h = linear(norm(x, block.norm2, `${at}/norm2`), block.fc1, `${at}/fc1`);
    const inner = g.op('Add', [
      g.op('Mul', [g.op('Mul', [h, h]), g.scalar(TWO_SQRT_2_OVER_PI * 0.044715)]),
      g.scalar(TWO_SQRT_2_OVER_PI),
    ]);
    x = g.op('Add', [x, linear(g.op('Mul', [h, g.op('Sigmoid', [g.op('Mul', [h, inner])])]), block.fc2, `${at}/fc2`)]);
  });
  let z = g.op('Gather', [norm(x, encoder.norm, 'norm'), g.initializer('first_token', BigInt64Array.of(0n), [])], {
    axis: 1,
  }); // [B, D]
  if (encoder.projection !== null) z = linear(z, encoder.projection, 'proj');
  g.output(z, 'embedding', 'float32', ['batch', encoder.embeddingDim]);
  return g.encode(
    { ...metadata, 'mrl.architecture': c.architecture, 'mrl.input_layout': 'NHWC' },
    `mrl Matryoshka ViT (d=${encoder.embeddingDim}), ONNX opset ${EXPORT_OPSET}.`,
  );
}

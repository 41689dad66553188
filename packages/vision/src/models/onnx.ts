import { EXPORT_OPSET, nestingMetadata, OnnxGraph } from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import type { BatchNorm, Conv2d } from './layers.js';
import type { ResNetEncoder } from './resnet.js';

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

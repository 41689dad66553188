import onnxProto from 'onnx-proto';
import { MrlError } from '../errors.js';
import { initializer, node, ONNX_FLOAT, onnxModel, valueInfo } from '@mrl/kernels';
import type { AdaptorWeights } from './adaptor.js';

const raw = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The adaptor as an ONNX model (opset 13): input `embeddings` [batch, d], output `adapted`
 * [batch, d] = x + relu(x W1 + b1) W2 + b2, x the input (minus the fixed mean with `center`),
 * times the fixed rotation with `rotation: 'pca'`.
 * Runs in ONNX Runtime (any language) after the model that produced the embeddings.
 *
 * @example await writeFileAtomically('adaptor/adaptor.onnx', adaptorOnnx(await loadAdaptor('adaptor')));
 */
export function adaptorOnnx(weights: AdaptorWeights): Uint8Array {
  const { dim, hidden } = weights.config;
  const { rotation, mean } = weights;
  const centred = mean === undefined ? 'embeddings' : 'centred';
  const x = rotation === undefined ? centred : 'rotated';
  return onnxModel(
    'mrl-matryoshka-adaptor',
    [
      ...(mean === undefined ? [] : [node('Sub', ['embeddings', 'mean'], ['centred'])]), // [B, d]
      ...(rotation === undefined ? [] : [node('MatMul', [centred, 'rotation'], ['rotated'])]), // [B, d]
      node('MatMul', [x, 'w1'], ['h_linear']), // [B, hidden]
      node('Add', ['h_linear', 'b1'], ['h_biased']),
      node('Relu', ['h_biased'], ['h']),
      node('MatMul', ['h', 'w2'], ['g_linear']), // [B, d]
      node('Add', ['g_linear', 'b2'], ['g']),
      node('Add', [x, 'g'], ['adapted']),
      initializer('w1', [dim, hidden], ONNX_FLOAT, raw(weights.w1)),
      initializer('b1', [hidden], ONNX_FLOAT, raw(weights.b1)),
      initializer('w2', [hidden, dim], ONNX_FLOAT, raw(weights.w2)),
      initializer('b2', [dim], ONNX_FLOAT, raw(weights.b2)),
      ...(rotation === undefined ? [] : [initializer('rotation', [dim, dim], ONNX_FLOAT, raw(rotation))]),
      ...(mean === undefined ? [] : [initializer('mean', [dim], ONNX_FLOAT, raw(mean))]),
      valueInfo(11, 'embeddings', ONNX_FLOAT, ['batch', dim]),
      valueInfo(12, 'adapted', ONNX_FLOAT, ['batch', dim]),
    ],
    { '': 13 },
  );
}

/**
 * Appends an adaptor to an exported model's ONNX graph, so the graph outputs adapted embeddings:
 * the model's `output` [batch, d] is L2-normalised (the adaptor was trained on unit-norm rows, as
 * `mrl-cli embed` writes them), centred by the adaptor's mean when it has one, mapped by the
 * adaptor, and becomes the graph output of the same name; the model's own vector stays available as `unadapted_<output>`. Metadata gains
 * `mrl.adaptor` (the adaptor's config). The caller keeps `[:, :m]` and renormalises as before.
 *
 * @example
 * ```ts
 * const onnx = withAdaptorOnnx(mlpOnnxModel(encoder, dims), await loadAdaptor('adaptor'));
 * ```
 */
export function withAdaptorOnnx(model: Uint8Array, weights: AdaptorWeights, output = 'embedding'): Uint8Array {
  const { onnx } = onnxProto;
  const decoded = onnx.ModelProto.decode(model);
  const graph = decoded.graph;
  const outputs = graph?.output ?? [];
  const target = outputs.find((o) => o.name === output);
  if (graph === null || graph === undefined || target === undefined) {
    throw new MrlError(
      'invalid-argument',
      `the ONNX model has no output '${output}' (outputs: ${outputs.map((o) => o.name).join(', ') || 'none'}).`,
      'Append the adaptor to a graph whose output is the [batch, d] embedding.',
    );
  }
  const { dim, hidden } = weights.config;
  const shape = target.type?.tensorType?.shape?.dim ?? [];
  const width = shape[1]?.dimValue;
  if (shape.length !== 2 || Number(width) !== dim) {
    throw new MrlError(
      'invalid-argument',
      `the model's output '${output}' is [${shape.map((d) => d.dimParam || String(d.dimValue)).join(', ')}] but the adaptor maps ${dim}-dim embeddings.`,
      'Use the adaptor trained on embeddings of this model (mrl-cli adapt on its mrl-cli embed output).',
    );
  }
  const base = `unadapted_${output}`;
  // The model's output value is renamed; everything after it reads the new name.
  for (const n of graph.node ?? []) {
    n.output = (n.output ?? []).map((name) => (name === output ? base : name));
    n.input = (n.input ?? []).map((name) => (name === output ? base : name));
  }
  const float = onnx.TensorProto.DataType.FLOAT;
  const tensor = (name: string, dims: number[], data: Float32Array): onnxProto.onnx.ITensorProto => ({
    name,
    dims,
    dataType: float,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const add = (opType: string, input: string[], out: string, attribute: onnxProto.onnx.IAttributeProto[] = []) => {
    nodes.push({ opType, name: `${opType}_${out}`, input, output: [out], attribute });
    return out;
  };
  const norm = add('ReduceL2', [base], 'adaptor/norm', [
    { name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [1] },
    { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
  ]); // [B, 1]
  const unit = add('Div', [base, add('Max', [norm, 'adaptor/eps'], 'adaptor/norm_clamped')], 'adaptor/unit'); // [B, d]
  const centred = weights.mean === undefined ? unit : add('Sub', [unit, 'adaptor/mean'], 'adaptor/centred');
  const x = weights.rotation === undefined ? centred : add('MatMul', [centred, 'adaptor/rotation'], 'adaptor/rotated');
  const h = add(
    'Relu',
    [add('Add', [add('MatMul', [x, 'adaptor/w1'], 'adaptor/h_linear'), 'adaptor/b1'], 'adaptor/h_biased')],
    'adaptor/h',
  ); // [B, hidden]
  const g = add('Add', [add('MatMul', [h, 'adaptor/w2'], 'adaptor/g_linear'), 'adaptor/b2'], 'adaptor/g'); // [B, d]
  add('Add', [x, g], output);
  graph.node = [...(graph.node ?? []), ...nodes];
  graph.initializer = [
    ...(graph.initializer ?? []),
    tensor('adaptor/eps', [], Float32Array.of(1e-12)),
    tensor('adaptor/w1', [dim, hidden], weights.w1),
    tensor('adaptor/b1', [hidden], weights.b1),
    tensor('adaptor/w2', [hidden, dim], weights.w2),
    tensor('adaptor/b2', [dim], weights.b2),
    ...(weights.rotation === undefined ? [] : [tensor('adaptor/rotation', [dim, dim], weights.rotation)]),
    ...(weights.mean === undefined ? [] : [tensor('adaptor/mean', [dim], weights.mean)]),
  ];
  // The adapted vector comes first, under the model's output name; the model's own one after it.
  graph.output = [
    { name: output, type: target.type ?? null },
    ...outputs.map((o) => (o === target ? { name: base, type: o.type ?? null } : o)),
  ];
  decoded.metadataProps = [
    ...(decoded.metadataProps ?? []).filter((p) => p.key !== 'mrl.adaptor'),
    { key: 'mrl.adaptor', value: JSON.stringify(weights.config) },
  ];
  return onnx.ModelProto.encode(decoded).finish();
}

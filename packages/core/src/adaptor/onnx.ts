import { initializer, node, ONNX_FLOAT, onnxModel, valueInfo } from '@mrl/kernels';
import type { AdaptorWeights } from './adaptor.js';

const raw = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The adaptor as an ONNX model (opset 13): input `embeddings` [batch, d], output `adapted`
 * [batch, d] = x + relu(x W1 + b1) W2 + b2, x the input or the input times the fixed rotation.
 * Runs in ONNX Runtime (any language) after the model that produced the embeddings.
 *
 * @example await writeFileAtomically('adaptor/adaptor.onnx', adaptorOnnx(await loadAdaptor('adaptor')));
 */
export function adaptorOnnx(weights: AdaptorWeights): Uint8Array {
  const { dim, hidden } = weights.config;
  const x = weights.rotation === undefined ? 'embeddings' : 'rotated';
  return onnxModel(
    'mrl-matryoshka-adaptor',
    [
      ...(weights.rotation === undefined ? [] : [node('MatMul', ['embeddings', 'rotation'], ['rotated'])]), // [B, d]
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
      ...(weights.rotation === undefined
        ? []
        : [initializer('rotation', [dim, dim], ONNX_FLOAT, raw(weights.rotation))]),
      valueInfo(11, 'embeddings', ONNX_FLOAT, ['batch', dim]),
      valueInfo(12, 'adapted', ONNX_FLOAT, ['batch', dim]),
    ],
    { '': 13 },
  );
}

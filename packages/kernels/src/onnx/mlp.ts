import { MrlError } from '../errors.js';
import type * as tf from '@tensorflow/tfjs';
import { EXPORT_OPSET, OnnxGraph } from './graph.js';

/**
 * What {@link mlpOnnxModel} reads of an MLP encoder (core's `MlpEncoder` has this shape):
 * `dense{i}/w` [in, out] and `dense{i}/b` [out] for each layer, ReLU between layers.
 */
export interface MlpWeights {
  readonly embeddingDim: number;
  readonly config: { readonly inputDim: number };
  variables(): ReadonlyMap<string, tf.Tensor>;
}

/** The metadata props every exported mrl encoder carries: the nesting dims and how to truncate. */
export function nestingMetadata(dims: readonly number[], embeddingDim: number): Record<string, string> {
  const sorted = dims.every((m, i) => Number.isInteger(m) && m >= 1 && (i === 0 || m > dims[i - 1]!));
  if (dims.length === 0 || !sorted || dims[dims.length - 1]! > embeddingDim) {
    throw new MrlError(
      'invalid-argument',
      `nesting dims [${dims.join(', ')}] must be ascending positive integers up to d = ${embeddingDim}.`,
    );
  }
  return {
    'mrl.nesting_dims': JSON.stringify(dims),
    'mrl.embedding_dim': String(embeddingDim),
    'mrl.truncation': 'z[:, :m] / ||z[:, :m]|| for m in mrl.nesting_dims',
  };
}

/**
 * An MLP encoder (core's `MlpEncoder`) as an ONNX graph (opset {@link EXPORT_OPSET}): `input` [batch, inputDim]
 * float32 (images flattened row-major, NHWC, as mrl feeds them) -> `embedding` [batch, d], with
 * the nesting dims in the metadata.
 *
 * @example
 * ```ts
 * await writeFileAtomically('model.onnx', mlpOnnxModel(encoder, [8, 16, 32, 64]));
 * ```
 */
export function mlpOnnxModel(encoder: MlpWeights, dims: readonly number[]): Uint8Array {
  const metadata = nestingMetadata(dims, encoder.embeddingDim);
  const g = new OnnxGraph('mrl-mlp');
  let h = g.input('input', 'float32', ['batch', encoder.config.inputDim]);
  const variables = encoder.variables();
  const layers = variables.size / 2;
  for (let i = 0; i < layers; i++) {
    const w = variables.get(`dense${i}/w`)!;
    const b = variables.get(`dense${i}/b`)!;
    h = g.op('Add', [
      g.op('MatMul', [h, g.initializer(`dense${i}/w`, w.dataSync() as Float32Array, w.shape)]),
      g.initializer(`dense${i}/b`, b.dataSync() as Float32Array, b.shape),
    ]);
    if (i < layers - 1) h = g.op('Relu', [h]);
  }
  g.output(h, 'embedding', 'float32', ['batch', encoder.embeddingDim]);
  return g.encode(
    { ...metadata, 'mrl.architecture': 'mlp' },
    `mrl Matryoshka MLP (d=${encoder.embeddingDim}), ONNX opset ${EXPORT_OPSET}.`,
  );
}

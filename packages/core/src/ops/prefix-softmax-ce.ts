import * as tf from '@tensorflow/tfjs';
import { runningSumPrefixLogits } from '../heads.js';
import { PREFIX_SOFTMAX_CE, PREFIX_SOFTMAX_CE_GRAD, type PrefixSoftmaxAttrs } from '@mrl/kernels';
import { softmaxCrossEntropy } from '../losses.js';

/**
 * The mean softmax cross-entropy of every prefix of a shared head, as a [k] vector: entry j is
 * `CE(z[:, :m_j] @ W[:m_j] + b, labels)` for `dims` m_1 < ... < m_k. `weight` is [d, C], or
 * [C, d] with `weightLayout: 'classes-first'` (a tied token table).
 *
 * Where the backend has our fused kernels (wasm on native kernels) the whole loss and its
 * gradient are one kernel each; elsewhere it is the running-sum logits and one
 * {@link softmaxCrossEntropy} per dim. Both give the same numbers up to float rounding.
 */
export function prefixSoftmaxCrossEntropy(
  embedding: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  labels: tf.Tensor1D,
  dims: readonly number[],
  weightLayout: 'embedding-first' | 'classes-first' = 'embedding-first',
): tf.Tensor1D {
  const backend = tf.getBackend();
  const fused =
    tf.getKernel(PREFIX_SOFTMAX_CE, backend) !== undefined &&
    tf.getKernel(PREFIX_SOFTMAX_CE_GRAD, backend) !== undefined;
  if (!fused) {
    return tf.tidy(
      () =>
        tf.stack(
          runningSumPrefixLogits(embedding, weight, bias, dims, weightLayout).map((l) =>
            softmaxCrossEntropy(l, labels),
          ),
        ) as tf.Tensor1D,
    );
  }
  return tf.tidy(() => {
    const labelIds = tf.cast(labels, 'int32');
    const attrs: PrefixSoftmaxAttrs = {
      dims: [...dims],
      classesFirst: weightLayout === 'classes-first',
      hasBias: bias !== null,
    };
    const named = attrs as unknown as tf.NamedAttrMap;
    // customGrad's typing passes inputs and the save function through one rest parameter.
    const op = tf.customGrad(((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const [z, w, b] = args as tf.Tensor[];
      const inputs: tf.NamedTensorMap = {
        embedding: z!,
        weight: w!,
        labels: labelIds,
        ...(bias === null ? {} : { bias: b! }),
      };
      const [losses, probs] = tf.engine().runKernel(PREFIX_SOFTMAX_CE, inputs, named) as tf.Tensor[];
      save([probs!, labelIds, z!, w!]);
      return {
        value: losses!,
        gradFunc: (dy: tf.Tensor, [savedProbs, savedLabels, savedZ, savedW]: tf.Tensor[]) =>
          tf
            .engine()
            .runKernel(
              PREFIX_SOFTMAX_CE_GRAD,
              { dy, probs: savedProbs!, labels: savedLabels!, embedding: savedZ!, weight: savedW! },
              named,
            ) as tf.Tensor[],
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return (bias === null ? op(embedding, weight) : op(embedding, weight, bias)) as tf.Tensor1D;
  });
}

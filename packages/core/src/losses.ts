import * as tf from '@tensorflow/tfjs';
import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from '@mrl/kernels';

/**
 * Mean softmax cross-entropy of `logits` [N, C] against integer `labels` [N]
 * (PyTorch `F.cross_entropy` with mean reduction). One op with its own gradient,
 * `(softmax - onehot) / N`: autodiff through log-softmax would take a second exp and about
 * twice the passes over [N, C], which dominates when C is a vocabulary and every nesting dim
 * has its own logits. The label logits are read by a forward-only gather, so the gradient
 * needs no scatter kernel, which some backends lack.
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const [rows, classes] = logits.shape;
    const labelIds = tf.cast(labels, 'int32');
    // customGrad's typing passes inputs and the save function through one rest parameter.
    // Native kernels where the backend has them (wasm with ONNX Runtime), tensor ops elsewhere.
    const backend = tf.getBackend();
    const fused =
      tf.getKernel(SOFTMAX_CROSS_ENTROPY, backend) !== undefined &&
      tf.getKernel(SOFTMAX_CROSS_ENTROPY_GRAD, backend) !== undefined;
    // customGrad's typing passes inputs and the save function through one rest parameter.
    const loss = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const [value, probs] = fused
        ? (tf.engine().runKernel(SOFTMAX_CROSS_ENTROPY, { logits: x, labels: labelIds }, {}) as tf.Tensor[])
        : tf.tidy(() => {
            const shifted = tf.sub(x, tf.max(x, 1, true));
            const exp = tf.exp(shifted);
            const total = tf.sum(exp, 1, true); // [N, 1]
            const flatLabelIds = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(classes, 'int32')), labelIds);
            const labelLogits = tf.gather(tf.reshape(shifted, [-1]), flatLabelIds); // [N]
            return [tf.mean(tf.sub(tf.reshape(tf.log(total), [rows]), labelLogits)), tf.div(exp, total)];
          });
      save([probs!, labelIds]); // kept for the backward pass, which runs after this tidy has ended
      return {
        value: value!,
        gradFunc: (dy: tf.Tensor, [savedProbs, savedLabels]: tf.Tensor[]) =>
          fused
            ? (tf
                .engine()
                .runKernel(
                  SOFTMAX_CROSS_ENTROPY_GRAD,
                  { probs: savedProbs!, labels: savedLabels!, dy },
                  {},
                ) as tf.Tensor)
            : tf.mul(tf.sub(savedProbs!, tf.oneHot(savedLabels!, classes)), tf.div(dy, rows)),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return loss(logits) as tf.Scalar;
  });
}

/** Row-wise L2 normalisation with a floor on the norm, so zero rows stay finite. */
export function l2Normalize(x: tf.Tensor2D, epsilon = 1e-12): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(x), 1, true), epsilon * epsilon));
    return tf.div(x, norm);
  });
}

import * as tf from '@tensorflow/tfjs';

/**
 * Mean softmax cross-entropy of `logits` [N, C] against integer `labels` [N]
 * (PyTorch `F.cross_entropy` with mean reduction). One-hot masking rather than `gather` keeps
 * the gradient free of scatter kernels, which some backends lack.
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[1];
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), classes);
    const logProbs = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logProbs), 1))) as tf.Scalar;
  });
}

/** Row-wise L2 normalisation with a floor on the norm, so zero rows stay finite. */
export function l2Normalize(x: tf.Tensor2D, epsilon = 1e-12): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(x), 1, true), epsilon * epsilon));
    return tf.div(x, norm);
  });
}

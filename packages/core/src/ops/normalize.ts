import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
  layerNormFits,
  RUNNING_MOMENTS,
} from '@mrl/kernels';

/**
 * `(x - mean) / sqrt(var + eps) * gamma + beta`, the statistics taken over `axes` and gamma,
 * beta broadcast along the last axis, with the closed-form gradient
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma,
 *   dgamma = sum(dy * xhat), dbeta = sum(dy)  (sums over every axis but the last).
 * Autodiff through the moments builds about twice as many kernels, each a pass over x; in a
 * ViT step LayerNorm was ~600 of ~2,500 kernel calls.
 */
function normalize(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  axes: number[],
  epsilon: number,
  onMoments?: (mean: tf.Tensor, variance: tf.Tensor) => void,
): tf.Tensor {
  const paramAxes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  // customGrad's typing passes inputs and the save function through one rest parameter.
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, xhat, rstd] = tf.tidy(() => {
      const mean = tf.mean(xx, axes, true);
      const centred = tf.sub(xx, mean);
      const variance = tf.mean(tf.square(centred), axes, true);
      onMoments?.(mean, variance);
      const r = tf.rsqrt(tf.add(variance, epsilon));
      const normed = tf.mul(centred, r);
      return [tf.add(tf.mul(normed, g), b), normed, r];
    });
    save([xhat!, rstd!, g]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, [savedXhat, savedRstd, savedGamma]: tf.Tensor[]) => {
        const gy = tf.mul(dy, savedGamma!);
        const meanG = tf.mean(gy, axes, true);
        const meanGx = tf.mean(tf.mul(gy, savedXhat!), axes, true);
        const dx = tf.mul(tf.sub(tf.sub(gy, meanG), tf.mul(savedXhat!, meanGx)), savedRstd!);
        return [dx, tf.sum(tf.mul(dy, savedXhat!), paramAxes), tf.sum(dy, paramAxes)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta);
}

/**
 * Layer normalisation over the last axis (Ba et al. 2016), with its closed-form gradient. Where
 * the backend has mrl's fused kernel (wasm; widths a multiple of 4), forward and gradient are one
 * kernel each, keeping the row mean and 1/std instead of the normalised activations.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor {
  if (
    x.dtype === 'float32' &&
    layerNormFits(x.shape) &&
    gamma.size === x.shape[x.rank - 1] &&
    beta.size === gamma.size &&
    tf.getKernel(LAYER_NORM, tf.getBackend()) !== undefined
  ) {
    return fusedLayerNorm(x, gamma, beta, epsilon);
  }
  return layerNormTensorOps(x, gamma, beta, epsilon);
}

/** The same layer norm in tensor ops: every backend, and the reference the fused kernel is checked against. */
export function layerNormTensorOps(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor {
  return normalize(x, gamma, beta, [x.rank - 1], epsilon);
}

function fusedLayerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor {
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x: xx, gamma: g, beta: b }, { epsilon }) as tf.Tensor[];
    save([xx, mean!, rstd!, g]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, [sx, sMean, sRstd, sGamma]: tf.Tensor[]) =>
        tf
          .engine()
          .runKernel(LAYER_NORM_GRAD, { x: sx!, mean: sMean!, rstd: sRstd!, gamma: sGamma!, dy }) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta);
}

/**
 * Training-mode batch normalisation of NHWC `x` over N, H, W with the batch statistics, and its
 * closed-form gradient. `onMoments` receives the batch mean and (biased) variance, [1, 1, 1, C],
 * for the running averages; they carry no gradient. Where the backend has mrl's batch-norm
 * kernels (wasm) and C is a multiple of 4, forward and gradient are one kernel each. With
 * `relu`, the result is `tf.relu` of it, with the same gradient (dy where the output is
 * positive), fused into those kernels where they run.
 *
 * @example
 * const h = batchNormTraining(conv, gamma, beta, 1e-5, undefined, true); // relu(bn(conv))
 */
export function batchNormTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  onMoments?: (mean: tf.Tensor, variance: tf.Tensor) => void,
  relu = false,
): tf.Tensor4D {
  const channels = x.shape[3];
  const backend = tf.getBackend();
  const fused =
    x.dtype === 'float32' &&
    channels % 4 === 0 &&
    tf.getKernel(BATCH_NORM_TRAINING, backend) !== undefined &&
    tf.getKernel(BATCH_NORM_TRAINING_GRAD, backend) !== undefined;
  if (!fused) {
    const y = normalize(x, gamma, beta, [0, 1, 2], epsilon, onMoments) as tf.Tensor4D;
    if (!relu) return y;
    return tf.tidy(() => tf.relu(y));
  }
  // The same closed form in two SIMD kernels (wasm): two passes over x forward, three backward.
  const op = tf.customGrad(((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, variance, rstd] = tf
      .engine()
      .runKernel(BATCH_NORM_TRAINING, { x: xx, gamma: g, beta: b }, { epsilon, relu }) as tf.Tensor[];
    if (onMoments !== undefined) {
      tf.tidy(() => onMoments(tf.reshape(mean!, [1, 1, 1, channels]), tf.reshape(variance!, [1, 1, 1, channels])));
    }
    variance!.dispose();
    save(relu ? [xx, g, mean!, rstd!, y!] : [xx, g, mean!, rstd!]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, [savedX, savedGamma, savedMean, savedRstd, savedY]: tf.Tensor[]) =>
        tf.engine().runKernel(
          BATCH_NORM_TRAINING_GRAD,
          {
            dy,
            x: savedX!,
            gamma: savedGamma!,
            mean: savedMean!,
            rstd: savedRstd!,
            ...(savedY === undefined ? {} : { y: savedY }),
          },
          { relu },
        ) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta) as tf.Tensor4D;
}

/**
 * A batch norm's running averages after one training batch (PyTorch's rule):
 * `running (1 - momentum) + batch momentum`, the batch variance corrected by `count / (count - 1)`
 * (`count` values per channel; no correction for 1). `mean` and `variance` are the batch's
 * (biased) moments, C values in any shape, as `batchNormTraining` hands them to `onMoments`.
 * Where the backend has mrl's kernel (wasm) the update is one kernel with the same bits as the
 * tensor ops here.
 *
 * @example
 * const [mean, variance] = runningMoments(bn.runningMean, bn.runningVar, batchMean, batchVar, 0.1, n);
 */
export function runningMoments(
  runningMean: tf.Tensor1D,
  runningVar: tf.Tensor1D,
  mean: tf.Tensor,
  variance: tf.Tensor,
  momentum: number,
  count: number,
): [tf.Tensor1D, tf.Tensor1D] {
  const correction = count > 1 ? count / (count - 1) : 1;
  if (tf.getKernel(RUNNING_MOMENTS, tf.getBackend()) !== undefined) {
    return tf
      .engine()
      .runKernel(RUNNING_MOMENTS, { runningMean, runningVar, mean, variance }, { momentum, correction }) as [
      tf.Tensor1D,
      tf.Tensor1D,
    ];
  }
  return tf.tidy(() => {
    const channels = runningMean.shape[0];
    const unbiased = tf.mul(variance, correction);
    return [
      tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(tf.reshape(mean, [channels]), momentum)),
      tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(tf.reshape(unbiased, [channels]), momentum)),
    ] as [tf.Tensor1D, tf.Tensor1D];
  });
}

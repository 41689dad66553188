import * as tf from '@tensorflow/tfjs';
import { sumTensors } from '../ops/sum-tensors.js';

/**
 * Scales all gradients together so their global L2 norm is at most `maxNorm` (PyTorch
 * `clip_grad_norm_`). Returns the new gradients and the norm before clipping; the caller owns
 * the returned tensors and the inputs are left as they were. The norm is read asynchronously:
 * GPU backends in Node cannot read synchronously.
 */
export async function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  const normTensor = tf.tidy(() => tf.sqrt(sumTensors([...grads.values()].map((g) => tf.sum(tf.square(g))))));
  const norm = (await normTensor.data())[0]!;
  normTensor.dispose();
  const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, scale === 1 ? tf.clone(g) : tf.tidy(() => tf.mul(g, scale)));
  return { grads: out, norm };
}

// One ResNet-18 (CIFAR) training step with the Matryoshka loss and SGD with momentum, on fixed
// seeds: what bench/resnet-profile.mjs times and bench/resnet-determinism.mjs repeats.
import * as tf from '@tensorflow/tfjs';
import { ClassificationObjective, createRandom, MatryoshkaLoss, SgdOptimizer, SharedHead } from '@mrl/core';
import { createVisionEncoder } from '@mrl/vision';

/**
 * Builds resnet18-cifar and a shared head over 10 classes on a fixed random batch of `batch`
 * 32x32x3 images; returns `step` (one SGD step, returning its loss) and the trained variables.
 */
export function resnetTrainingStep(batch) {
  const random = createRandom(1);
  const encoder = createVisionEncoder('resnet18-cifar', {}, random);
  const input = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 3);
  const head = new SharedHead(encoder.embeddingDim, 10, random);
  const labels = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 10),
    'int32',
  );
  const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: encoder.embeddingDim });
  const trainable = new Map(
    [
      ...[...encoder.variables()].map(([k, v]) => [`encoder/${k}`, v]),
      ...[...head.variables()].map(([k, v]) => [`head/${k}`, v]),
    ].filter(([, v]) => v.trainable),
  );
  const varList = [...trainable.values()];
  const optimizer = new SgdOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9 });
  const step = () => {
    const { value, grads } = tf.variableGrads(
      () => loss.compute(encoder.encode(input, true), { labels }).total,
      varList,
    );
    optimizer.apply(trainable, new Map([...trainable].map(([k, v]) => [k, grads[v.name]])), 0.01);
    const lossValue = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    return lossValue;
  };
  return { step, varList };
}

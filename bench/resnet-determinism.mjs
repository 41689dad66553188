// Run-to-run determinism of ResNet-18 training at a fixed thread count: four SGD steps (batch 8,
// fixed seeds) in this process, printing each step's loss and the sum of |weights| after them.
// Run it twice with the same --threads: the lines must be equal to the last bit (different
// thread counts may differ in the last bits).
// Usage (after `pnpm run build`): node bench/resnet-determinism.mjs [--threads 1] [--convolution onednn|onnxruntime]
import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  initBackend,
  loadOnnxRuntimeKernels,
  MatryoshkaLoss,
  registerWasmTrainingKernels,
  SgdOptimizer,
  SharedHead,
} from '@mrl/core';
import { createVisionEncoder } from '@mrl/vision';
import { arg } from './args.mjs';

const THREADS = Number(arg('threads', '1'));
const info = await initBackend('wasm', { threads: THREADS });
const convolution = arg('convolution', undefined);
if (convolution !== undefined) {
  const native = loadOnnxRuntimeKernels({ threads: THREADS, convolution });
  if (native === undefined) throw new Error('--convolution needs onnxruntime-node');
  registerWasmTrainingKernels({ native });
  info.detail = info.detail.replace(/on ONNX Runtime .*$/, `on ${native.detail}`);
}
const random = createRandom(1);
const encoder = createVisionEncoder('resnet18-cifar', {}, random);
const input = tf.randomNormal([8, 32, 32, 3], 0, 1, 'float32', 3);
const head = new SharedHead(encoder.embeddingDim, 10, random);
const labels = tf.tensor1d(
  Array.from({ length: 8 }, (_, i) => i % 10),
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
const losses = [];
for (let i = 0; i < 4; i++) {
  const { value, grads } = tf.variableGrads(() => loss.compute(encoder.encode(input, true), { labels }).total, varList);
  optimizer.apply(trainable, new Map([...trainable].map(([k, v]) => [k, grads[v.name]])), 0.01);
  losses.push(value.dataSync()[0]);
  tf.dispose([value, ...Object.values(grads)]);
}
let weights = 0;
for (const v of varList) weights += tf.tidy(() => tf.sum(tf.abs(v)).dataSync()[0]);
console.log(info.detail);
console.log(`threads ${THREADS}: losses ${JSON.stringify(losses)}, sum |w| ${weights}`);

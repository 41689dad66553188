// Run-to-run determinism of ResNet-18 training at a fixed thread count: four SGD steps (batch 8,
// fixed seeds) in this process, printing each step's loss and the sum of |weights| after them.
// Run it twice with the same --threads: the lines must be equal to the last bit (different
// thread counts may differ in the last bits).
// Usage (after `pnpm run build`): node bench/resnet-determinism.mjs [--threads 1] [--convolution onednn|onnxruntime]
//   [--batch-norm onednn|wasm] [--sgd onednn|wasm]
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/core';
import { arg } from './args.mjs';
import { applyKernelFlags } from './kernel-flags.mjs';
import { resnetTrainingStep } from './resnet-step.mjs';

const THREADS = Number(arg('threads', '1'));
const info = await initBackend('wasm', { threads: THREADS });
applyKernelFlags(info, THREADS);
const { step, varList } = resnetTrainingStep(8);
const losses = [];
for (let i = 0; i < 4; i++) losses.push(step());
let weights = 0;
for (const v of varList) weights += tf.tidy(() => tf.sum(tf.abs(v)).dataSync()[0]);
console.log(info.detail);
console.log(`threads ${THREADS}: losses ${JSON.stringify(losses)}, sum |w| ${weights}`);

// End-to-end check of the WebGPU path: a few Matryoshka MLP training steps on --backend webgpu
// (npm `webgpu`, Dawn) against the same steps on the cpu backend, from the same initial weights.
// Needs a Vulkan driver (on a machine without a GPU: Mesa 25 lavapipe from bookworm-backports).
// Usage: node bench/webgpu-check.mjs [--steps 5]
import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  initBackend,
  MatryoshkaLoss,
  MatryoshkaModel,
  MlpEncoder,
  SharedHead,
  Trainer,
} from '@mrl/core';

const at = process.argv.indexOf('--steps');
const steps = at >= 0 ? Number(process.argv[at + 1]) : 5;
const n = 512;
const random = createRandom(5);
const inputs = Float32Array.from({ length: n * 64 }, () => random() - 0.5);
const labels = Int32Array.from(
  { length: n },
  (_, i) => (inputs[i * 64] > 0 ? 1 : 0) + (inputs[i * 64 + 1] > 0 ? 2 : 0),
);

async function train(backendName) {
  const info = await initBackend(backendName);
  const encoder = new MlpEncoder(
    { architecture: 'mlp', embeddingDim: 32, inputDim: 64, hidden: [128] },
    createRandom(1),
  );
  const loss = new MatryoshkaLoss(new ClassificationObjective(new SharedHead(32, 4, createRandom(2))), {
    embeddingDim: 32,
  });
  const model = new MatryoshkaModel(encoder, loss);
  const data = {
    size: n,
    batch(indices) {
      if (tf.getBackend() !== backendName)
        throw new Error(`expected backend ${backendName}, running ${tf.getBackend()}`);
      const rows = new Float32Array(indices.length * 64);
      indices.forEach((r, i) => rows.set(inputs.subarray(r * 64, r * 64 + 64), i * 64));
      const input = tf.tensor2d(rows, [indices.length, 64]);
      const y = tf.tensor1d(
        Int32Array.from(indices, (r) => labels[r]),
        'int32',
      );
      return { input, target: { labels: y }, size: indices.length, dispose: () => tf.dispose([input, y]) };
    },
  };
  const losses = [];
  const t0 = performance.now();
  await new Trainer(model, data, {
    steps,
    batchSize: 128,
    seed: 0,
    optimizer: { type: 'sgd', lr: 0.1 },
    onEvent: (e) => e.type === 'step' && losses.push(e.loss),
  }).fit();
  return { info, losses, ms: (performance.now() - t0) / steps };
}

const gpu = await train('webgpu');
const cpu = await train('cpu');
console.log(`webgpu adapter: ${gpu.info.detail}`);
console.log('step  webgpu loss  cpu loss   |diff|');
gpu.losses.forEach((l, i) =>
  console.log(
    `${String(i + 1).padStart(4)}  ${l.toFixed(6).padStart(11)}  ${cpu.losses[i].toFixed(6).padStart(8)}  ${Math.abs(l - cpu.losses[i]).toExponential(2)}`,
  ),
);
console.log(`ms/step webgpu ${gpu.ms.toFixed(1)}, cpu ${cpu.ms.toFixed(1)}`);

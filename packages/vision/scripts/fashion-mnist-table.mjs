// Reproduces the Fashion-MNIST table in ../README.md (MRL vs FF, SVD and random feature
// selection, plus robustness). Build first: pnpm exec tsc -b packages/core packages/vision
// Usage: node packages/vision/scripts/fashion-mnist-table.mjs [model] [d] [trainLimit] [epochs] [runDir]
import { initBackend } from '@mrl/core';
import { fitVision } from '@mrl/vision';

const [model = 'resnet-tiny', d = '128', trainLimit = '15000', epochs = '2', runDir = 'runs/vision-table'] = process.argv.slice(2);
const backend = await initBackend('wasm');
console.error(`backend: ${backend.name}`);
const started = Date.now();
const report = await fitVision(
  {
    model,
    data: 'fashion-mnist',
    embeddingDim: Number(d),
    head: 'separate',
    epochs: Number(epochs),
    batchSize: 128,
    optimizer: { type: 'adamw', lr: 0.002, weightDecay: 0.0001 },
    warmupSteps: 20,
    trainLimit: Number(trainLimit),
    compare: ['ff', 'svd', 'rand'],
    robustness: true,
  },
  {
    runDir,
    seed: 0,
    resume: false,
    log: (line) => console.error(line),
    onEvent: (event, label) => {
      if (event.type === 'step' && (event.step % 50 === 0 || event.step === event.totalSteps)) {
        console.error(`${label} step ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(4)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      }
    },
  },
);
console.log(`\n${report.title}\n${report.table}\n\nwall time: ${((Date.now() - started) / 60000).toFixed(1)} min`);

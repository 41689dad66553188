// Reproduces the Fashion-MNIST table in ../README.md (MRL vs FF, SVD and random feature
// selection, plus robustness). Build first: pnpm exec tsc -b packages/core packages/vision
// Usage: node packages/vision/scripts/fashion-mnist-table.mjs [--model resnet-tiny] [--dim 128]
//   [--train-limit 12000] [--epochs 2] [--lr 0.008] [--run-dir runs/vision-table]
//   [--compare ff,svd,rand] [--ff-dims 8,16] [--robustness gaussian-noise:3,...|none] [--resume]
//   [--train-only mrl,ff-8] [--max-queries 2000] [--weights 1,1,1,1,1] [--seed 0] [--kernels auto|onnxruntime|wasm]
// Every model checkpoints at its end, so a run can be split over processes (same --run-dir,
// different --train-only lists) and then finished with --resume, which only evaluates.
import { parseArgs } from 'node:util';
import { initBackend } from '@mrl/core';
import { DEFAULT_CORRUPTIONS, fitVision, parseCorruptions } from '@mrl/vision';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'resnet-tiny' },
    dim: { type: 'string', default: '128' },
    'train-limit': { type: 'string', default: '12000' },
    epochs: { type: 'string', default: '2' },
    lr: { type: 'string', default: '0.008' },
    'run-dir': { type: 'string', default: 'runs/vision-table' },
    compare: { type: 'string', default: 'ff,svd,rand' },
    'ff-dims': { type: 'string' },
    'train-only': { type: 'string' },
    'max-queries': { type: 'string', default: '2000' },
    weights: { type: 'string' },
    seed: { type: 'string', default: '0' },
    robustness: { type: 'string' },
    resume: { type: 'boolean', default: false },
    kernels: { type: 'string', default: 'auto' },
  },
});
const backend = await initBackend('wasm', { kernels: a.kernels });
console.error(`backend: ${backend.name} (${backend.detail})`);
const started = Date.now();
const report = await fitVision(
  {
    model: a.model,
    data: 'fashion-mnist',
    embeddingDim: Number(a.dim),
    head: 'separate',
    epochs: Number(a.epochs),
    batchSize: 128,
    optimizer: { type: 'adamw', lr: Number(a.lr), weightDecay: 0.0001 },
    warmupSteps: 20,
    trainLimit: Number(a['train-limit']),
    maxQueries: Number(a['max-queries']),
    ...(a.weights === undefined ? {} : { weights: a.weights.split(',').map(Number) }),
    compare: a.compare.split(',').filter((s) => s !== ''),
    ...(a['ff-dims'] === undefined ? {} : { ffDims: a['ff-dims'].split(',').map(Number) }),
    ...(a['train-only'] === undefined ? {} : { trainOnly: a['train-only'].split(',') }),
    robustness:
      a.robustness === 'none'
        ? false
        : a.robustness === undefined
          ? DEFAULT_CORRUPTIONS
          : parseCorruptions(a.robustness),
  },
  {
    runDir: a['run-dir'],
    seed: Number(a.seed),
    resume: a.resume,
    log: (line) => console.error(line),
    onEvent: (event, label) => {
      if (event.type === 'start' && event.resumedFrom !== undefined)
        console.error(`${label}: resumed from ${event.resumedFrom}`);
      if (event.type === 'step' && (event.step % 50 === 0 || event.step === event.totalSteps)) {
        console.error(
          `${label} step ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(4)} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
        );
      }
    },
  },
);
console.log(`\n${report.title}\n${report.table}\n\nwall time: ${((Date.now() - started) / 60000).toFixed(1)} min`);

// Checks an install without optional dependencies (no webgpu, no onnxruntime-node for
// @mrl/kernels): a seeded MLP trains a few Matryoshka steps on the wasm backend (its own kernels,
// no native ones) with the same losses as the cpu reference backend, and --backend webgpu fails
// with the MrlError that names the missing package. Needs no test runner (vitest's bundler and
// sharp are optional-dependency binaries too, so they are absent in such an install).
// Run after pnpm run build:  node scripts/no-optional-check.mjs   (exit 1 on a failed check)
import { createRandom, initBackend, MlpEncoder, MrlError, trainClassifier } from '../packages/core/dist/index.js';

const STEPS = 6;
const TOLERANCE = 1e-4; // relative, per step: wasm (XNNPACK) and cpu sum in different orders

function dataset() {
  const random = createRandom(7, 1);
  const count = 256;
  const inputs = new Float32Array(count * 32);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 4;
    for (let j = 0; j < 32; j++) inputs[i * 32 + j] = random() - 0.5 + (j % 4 === labels[i] ? 1 : 0);
  }
  return { inputs, exampleShape: [32], labels, count, numClasses: 4 };
}

async function losses(backend) {
  const info = await initBackend(backend, backend === 'wasm' ? { threads: 1 } : {});
  const encoder = new MlpEncoder(
    { architecture: 'mlp', inputDim: 32, hidden: [64], embeddingDim: 16 },
    createRandom(0, 4),
  );
  const seen = [];
  const run = await trainClassifier({
    encoder,
    train: dataset(),
    dims: [4, 8, 16],
    head: 'separate',
    trainer: {
      steps: STEPS,
      batchSize: 32,
      seed: 0,
      optimizer: { type: 'adamw', lr: 1e-3 },
      onEvent: (event) => {
        if (event.type === 'step') seen.push(event.loss);
      },
    },
  });
  return { info, seen, final: run.fit.finalLoss };
}

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};

const cpu = await losses('cpu');
const wasm = await losses('wasm');
console.log(`wasm: ${wasm.info.detail}`);
console.log(`losses, cpu:  ${cpu.seen.map((l) => l.toFixed(6)).join(' ')}`);
console.log(`losses, wasm: ${wasm.seen.map((l) => l.toFixed(6)).join(' ')}`);
check(wasm.seen.length === STEPS && cpu.seen.length === STEPS, `${STEPS} steps on each backend`);
check(
  wasm.seen.every((l, i) => Number.isFinite(l) && Math.abs(l - cpu.seen[i]) <= TOLERANCE * Math.abs(cpu.seen[i])),
  `every step's wasm loss matches cpu within ${TOLERANCE} relative`,
);
check(!wasm.info.detail.includes('ONNX Runtime'), 'wasm runs without the optional native kernels');

const error = await initBackend('webgpu').then(
  () => undefined,
  (e) => e,
);
check(
  MrlError.is(error) &&
    error.kind === 'backend-unavailable' &&
    error.message.includes("needs the npm package 'webgpu'"),
  `--backend webgpu: ${error instanceof Error ? error.message : 'no error'}`,
);
if (MrlError.is(error)) console.log(`     fix: ${error.fix}`);
process.exit(failed ? 1 : 0);

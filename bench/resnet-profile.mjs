// Where a ResNet-18 training step's CPU time goes, kernel by kernel, and the step's CPU time
// next to PyTorch's (bench/torch_speed.py's copy of the model, in a child process), both on
// --threads threads (default 1). CPU time (user + system of the process) rather than wall time: on
// a shared machine the neighbours move it far less. Each kernel's wall time is listed too: at 2
// threads, a kernel whose CPU time is about its wall time ran on one thread. Convolutions are
// listed per shape and stride.
// Usage (after `pnpm run build`): node bench/resnet-profile.mjs [--steps 3] [--threads 1] [--python /usr/bin/python3]
//   [--no-torch] [--no-nchwc] [--convolution onednn|onnxruntime] [--batch-norm onednn|wasm] [--sgd onednn|wasm]
// --no-nchwc: every convolution on ONNX's Conv (im2col + SGEMM), none on MLAS's NCHWc kernels (nor oneDNN);
// --convolution: what runs the convolutions (default: oneDNN where its addon is built).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/core';
import { arg } from './args.mjs';
import { applyKernelFlags } from './kernel-flags.mjs';
import { resnetTrainingStep } from './resnet-step.mjs';

const STEPS = Number(arg('steps', '3'));
const THREADS = Number(arg('threads', '1'));
const info = await initBackend('wasm', { threads: THREADS });
applyKernelFlags(info, THREADS);
const { step } = resnetTrainingStep(16);
step();
step();

// Every registered wasm kernel wrapped to add its CPU time (outermost calls only) to a table.
const table = new Map();
let depth = 0;
for (const kernel of tf.getKernelsForBackend('wasm')) {
  const inner = kernel.kernelFunc;
  tf.unregisterKernel(kernel.kernelName, 'wasm');
  tf.registerKernel({
    ...kernel,
    kernelFunc: (args) => {
      if (depth++ > 0) {
        try {
          return inner(args);
        } finally {
          depth--;
        }
      }
      const start = process.cpuUsage();
      const wallStart = performance.now();
      try {
        return inner(args);
      } finally {
        depth--;
        const wall = performance.now() - wallStart;
        const used = process.cpuUsage(start);
        const key = kernel.kernelName.startsWith('Conv')
          ? `${kernel.kernelName} ${Object.values(args.inputs)
              .map((t) => `[${t.shape.join(',')}]`)
              .join(' ')} s${[args.attrs.strides].flat()[0]}`
          : kernel.kernelName;
        const entry = table.get(key) ?? { ms: 0, wall: 0, calls: 0 };
        entry.ms += (used.user + used.system) / 1000;
        entry.wall += wall;
        entry.calls += 1;
        table.set(key, entry);
      }
    },
  });
}
const perStep = [];
const wallPerStep = [];
for (let i = 0; i < STEPS; i++) {
  const start = process.cpuUsage();
  const wallStart = performance.now();
  step();
  wallPerStep.push(performance.now() - wallStart);
  const used = process.cpuUsage(start);
  perStep.push((used.user + used.system) / 1000);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mrlMs = median(perStep);
const mrlWall = median(wallPerStep);
// The kernels' times are means over the timed steps, so the step's own is too where they are compared.
const mrlWallMean = wallPerStep.reduce((a, b) => a + b, 0) / STEPS;
const mrlMean = perStep.reduce((a, b) => a + b, 0) / STEPS;
let inKernels = 0;
let inKernelsWall = 0;
for (const e of table.values()) {
  inKernels += e.ms / STEPS;
  inKernelsWall += e.wall / STEPS;
}
const groups = new Map();
for (const [key, e] of table) {
  const group = key.split(' ')[0];
  const g = groups.get(group) ?? { ms: 0, wall: 0 };
  g.ms += e.ms / STEPS;
  g.wall += e.wall / STEPS;
  groups.set(group, g);
}
// At more than one thread: the kernels whose CPU time is under 1.15x their wall time ran on one.
const oneThread = [...groups].filter(([, g]) => g.ms < 1.15 * g.wall);

console.log(
  `# ResNet-18 (resnet18-cifar), batch 16, SGD momentum: CPU and wall time of one training step, ${THREADS} thread${THREADS === 1 ? '' : 's'}`,
);
console.log(`mrl: ${info.detail}; node ${process.version}`);
console.log(
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${os.availableParallelism()} cpus`,
);
console.log(
  `mrl step: ${mrlMs.toFixed(1)} ms CPU (median of ${STEPS}: ${perStep.map((x) => x.toFixed(0)).join(', ')})`,
);
console.log(`mrl step: ${mrlWall.toFixed(1)} ms wall (median of ${STEPS})`);
console.log(
  `  in kernels ${inKernels.toFixed(1)} ms CPU, ${inKernelsWall.toFixed(1)} ms wall; outside (tape, dispatch, JavaScript) ${(mrlMean - inKernels).toFixed(1)} ms CPU, ${(mrlWallMean - inKernelsWall).toFixed(1)} ms wall (means)`,
);
if (THREADS > 1) {
  const ms = oneThread.reduce((t, [, g]) => t + g.wall, 0);
  console.log(
    `  on one thread (kernel CPU time < 1.15x its wall time): ${ms.toFixed(1)} ms wall in ${oneThread.length} kernels, plus the ${(mrlWallMean - inKernelsWall).toFixed(1)} ms outside them`,
  );
}
console.log('  by kernel (CPU ms, wall ms, share of the step CPU time):');
for (const [group, g] of [...groups].sort((a, b) => b[1].ms - a[1].ms).slice(0, 16)) {
  console.log(
    `    ${group.padEnd(28)} ${g.ms.toFixed(1).padStart(7)} ms  ${g.wall.toFixed(1).padStart(7)} ms  ${((100 * g.ms) / mrlMs).toFixed(1).padStart(5)}%`,
  );
}
console.log('  convolutions by shape (inputs, stride), per step:');
for (const [key, e] of [...table].filter(([k]) => k.startsWith('Conv')).sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(
    `    ${key.padEnd(62)} ${(e.ms / STEPS).toFixed(1).padStart(7)} ms  ${(e.wall / STEPS).toFixed(1).padStart(7)} ms  ${e.calls / STEPS} calls`,
  );
}

if (!process.argv.includes('--no-torch')) {
  const script = `
import os, sys, time
sys.path.insert(0, ${JSON.stringify(fileURLToPath(new URL('.', import.meta.url)))})
import torch, torch_speed
torch.set_num_threads(${THREADS})
case = torch_speed.Case({'model': 'resnet18', 'batch': 16})
for _ in range(2): case.step('mrl')
xs = []
for _ in range(${STEPS}):
    t = time.process_time(); w = time.perf_counter(); case.step('mrl')
    xs.append(((time.process_time() - t) * 1000, (time.perf_counter() - w) * 1000))
print(' '.join(f'{x:.1f},{y:.1f}' for x, y in xs))
`;
  const torch = spawnSync(arg('python', '/usr/bin/python3'), ['-c', script], {
    env: {
      ...process.env,
      OMP_NUM_THREADS: String(THREADS),
      OPENBLAS_NUM_THREADS: String(THREADS),
      MKL_NUM_THREADS: String(THREADS),
    },
    encoding: 'utf8',
  });
  if (torch.status !== 0) {
    console.log(`PyTorch: not run (${(torch.stderr || '').trim().split('\n').pop()})`);
  } else {
    const pairs = torch.stdout
      .trim()
      .split(' ')
      .map((p) => p.split(',').map(Number));
    const xs = pairs.map(([cpu]) => cpu);
    const torchMs = median(xs);
    const torchWall = median(pairs.map(([, wall]) => wall));
    console.log(
      `PyTorch step: ${torchMs.toFixed(1)} ms CPU (median of ${STEPS}: ${xs.map((x) => x.toFixed(0)).join(', ')}), ${torchWall.toFixed(1)} ms wall`,
    );
    console.log(`mrl / PyTorch CPU time per step: ${(mrlMs / torchMs).toFixed(2)}`);
    console.log(`mrl / PyTorch wall time per step: ${(mrlWall / torchWall).toFixed(2)} (not paired: see speed.mjs)`);
  }
}

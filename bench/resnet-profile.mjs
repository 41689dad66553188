// Where a ResNet-18 training step's CPU time goes, kernel by kernel, and the step's CPU time
// next to PyTorch's (bench/torch_speed.py's copy of the model, in a child process), both on one
// thread. CPU time (user + system of the process) rather than wall time: on a shared machine
// the neighbours move it far less. Convolutions are listed per shape and stride.
// Usage (after `pnpm run build`): node bench/resnet-profile.mjs [--steps 3] [--python /usr/bin/python3] [--no-torch]
//   [--no-nchwc] [--convolution onednn|onnxruntime]
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
const info = await initBackend('wasm', { threads: 1 });
applyKernelFlags(info, 1);
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
      try {
        return inner(args);
      } finally {
        depth--;
        const used = process.cpuUsage(start);
        const key = kernel.kernelName.startsWith('Conv')
          ? `${kernel.kernelName} ${Object.values(args.inputs)
              .map((t) => `[${t.shape.join(',')}]`)
              .join(' ')} s${[args.attrs.strides].flat()[0]}`
          : kernel.kernelName;
        const entry = table.get(key) ?? { ms: 0, calls: 0 };
        entry.ms += (used.user + used.system) / 1000;
        entry.calls += 1;
        table.set(key, entry);
      }
    },
  });
}
const perStep = [];
for (let i = 0; i < STEPS; i++) {
  const start = process.cpuUsage();
  step();
  const used = process.cpuUsage(start);
  perStep.push((used.user + used.system) / 1000);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mrlMs = median(perStep);
let inKernels = 0;
for (const e of table.values()) inKernels += e.ms / STEPS;
const groups = new Map();
for (const [key, e] of table) {
  const group = key.split(' ')[0];
  groups.set(group, (groups.get(group) ?? 0) + e.ms / STEPS);
}

console.log(`# ResNet-18 (resnet18-cifar), batch 16, SGD momentum: CPU time of one training step`);
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
console.log(
  `  in kernels ${inKernels.toFixed(1)} ms; outside (tape, dispatch, JavaScript) ${(mrlMs - inKernels).toFixed(1)} ms`,
);
console.log('  by kernel:');
for (const [group, ms] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 14)) {
  console.log(
    `    ${group.padEnd(28)} ${ms.toFixed(1).padStart(7)} ms  ${((100 * ms) / mrlMs).toFixed(1).padStart(5)}%`,
  );
}
console.log('  convolutions by shape (inputs, stride), per step:');
for (const [key, e] of [...table].filter(([k]) => k.startsWith('Conv')).sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(`    ${key.padEnd(62)} ${(e.ms / STEPS).toFixed(1).padStart(7)} ms  ${e.calls / STEPS} calls`);
}

if (!process.argv.includes('--no-torch')) {
  const script = `
import os, sys, time
sys.path.insert(0, ${JSON.stringify(fileURLToPath(new URL('.', import.meta.url)))})
import torch_speed
case = torch_speed.Case({'model': 'resnet18', 'batch': 16})
for _ in range(2): case.step('mrl')
xs = []
for _ in range(${STEPS}):
    t = time.process_time(); case.step('mrl'); xs.append((time.process_time() - t) * 1000)
print(' '.join(f'{x:.1f}' for x in xs))
`;
  const torch = spawnSync(arg('python', '/usr/bin/python3'), ['-c', script], {
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    encoding: 'utf8',
  });
  if (torch.status !== 0) {
    console.log(`PyTorch: not run (${(torch.stderr || '').trim().split('\n').pop()})`);
  } else {
    const xs = torch.stdout.trim().split(' ').map(Number);
    const torchMs = median(xs);
    console.log(
      `PyTorch step: ${torchMs.toFixed(1)} ms CPU (median of ${STEPS}: ${xs.map((x) => x.toFixed(0)).join(', ')})`,
    );
    console.log(`mrl / PyTorch CPU time per step: ${(mrlMs / torchMs).toFixed(2)}`);
  }
}

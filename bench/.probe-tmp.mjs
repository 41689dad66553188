import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/core';
import { resnetTrainingStep } from './resnet-step.mjs';
const THREADS = Number(process.argv[2] ?? 2);
const STEPS = 4;
const info = await initBackend('wasm', { threads: THREADS });
console.log(info.detail);
const { step } = resnetTrainingStep(16);
step(); step();
const table = new Map();
let depth = 0;
for (const kernel of tf.getKernelsForBackend('wasm')) {
  const inner = kernel.kernelFunc;
  tf.unregisterKernel(kernel.kernelName, 'wasm');
  tf.registerKernel({ ...kernel, kernelFunc: (args) => {
    if (depth++ > 0) { try { return inner(args); } finally { depth--; } }
    const c0 = process.cpuUsage(); const t0 = performance.now();
    try { return inner(args); } finally {
      depth--;
      const wall = performance.now() - t0; const u = process.cpuUsage(c0);
      const sz = Object.values(args.inputs).reduce((m, t) => Math.max(m, t.size ?? t.shape.reduce((a,b)=>a*b,1)), 0); const key = kernel.kernelName + (sz > 4096 ? ' big' : ' small');
      const e = table.get(key) ?? { wall: 0, cpu: 0, calls: 0 };
      e.wall += wall; e.cpu += (u.user + u.system) / 1000; e.calls++; table.set(key, e);
    }
  }});
}
const walls = [];
for (let i = 0; i < STEPS; i++) { const t = performance.now(); step(); walls.push(performance.now() - t); }
walls.sort((a,b)=>a-b);
console.log('step wall median', walls[STEPS>>1].toFixed(1), walls.map(x=>x.toFixed(0)).join(' '));
let tw=0, tc=0;
for (const [k, e] of [...table].sort((a,b)=>b[1].wall-a[1].wall)) { tw+=e.wall/STEPS; tc+=e.cpu/STEPS;
  console.log(k.padEnd(30), (e.wall/STEPS).toFixed(1).padStart(7), (e.cpu/STEPS).toFixed(1).padStart(7), (e.calls/STEPS).toFixed(0).padStart(5)); }
console.log('in kernels wall', tw.toFixed(1), 'cpu', tc.toFixed(1));

import * as tf from '@tensorflow/tfjs';
import { initBackend, loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
await initBackend('wasm', { threads: 2 });
const addon = loadOnnxRuntimeKernels({ threads: 2, batchNorm: 'onednn' });
const shipped = loadOnnxRuntimeKernels({ threads: 2, batchNorm: 'wasm' });
const a = tf.randomNormal([1040, 192]);
const t = (f) => { const t0 = performance.now(); tf.tidy(f); return performance.now() - t0; };
const med = (xs) => xs.sort((p, q) => p - q)[xs.length >> 1];
for (const [name, native] of [['addon', addon], ['shipped', shipped], ['addon', addon]]) {
  registerWasmTrainingKernels({ native });
  const ws = []; for (let r = 0; r < 200; r++) ws.push(t(() => tf.sum(a, 0)));
  const ms = []; for (let r = 0; r < 200; r++) ms.push(t(() => tf.mul(a, a)));
  console.log(name, 'tight sum', med(ws).toFixed(3), 'mul', med(ms).toFixed(3));
}
// Alternating with a 1 ms sleep-free JS busy gap in between.
registerWasmTrainingKernels({ native: addon });
const ws = [];
for (let r = 0; r < 100; r++) { const e = performance.now() + 2; while (performance.now() < e); ws.push(t(() => tf.sum(a, 0))); }
console.log('addon after 2ms busy gap', med(ws).toFixed(3));
const ws2 = [];
for (let r = 0; r < 100; r++) { await new Promise((res) => setTimeout(res, 2)); ws2.push(t(() => tf.sum(a, 0))); }
console.log('addon after 2ms sleep gap', med(ws2).toFixed(3));

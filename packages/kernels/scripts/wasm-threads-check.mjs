// Does TF.js's threaded SIMD wasm build (tfjs-backend-wasm-threaded-simd.wasm, setThreadsCount)
// run in Node, and does it pay for the ops that stay on wasm? Prints the thread count the backend
// reports and per-op times at ViT-tiny's shapes.
//
//   node packages/kernels/scripts/wasm-threads-check.mjs 2     # then 1, and compare
//
// TF.js 4.22 turns threads off in Node (WASM_HAS_MULTITHREAD_SUPPORT is false there, tfjs issue
// 3830), and its Emscripten pthread workers are blob: URLs, which Node's Worker refuses. With
// N > 1 this script forces the flag and starts each worker from the blob's text instead (the
// Blob and URL.createObjectURL are wrapped to remember it), so the threaded binary does load.
import * as tf from '@tensorflow/tfjs';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import { Worker as NodeWorker } from 'node:worker_threads';

const n = Number(process.argv[2] ?? 2);
if (n > 1) {
  const texts = new WeakMap();
  const urls = new Map();
  const RealBlob = globalThis.Blob;
  globalThis.Blob = class extends RealBlob {
    constructor(parts, options) {
      super(parts, options);
      if (parts.every((p) => typeof p === 'string')) texts.set(this, parts.join(''));
    }
  };
  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = (blob) => {
    const url = createObjectURL(blob);
    if (texts.has(blob)) urls.set(url, texts.get(blob));
    return url;
  };
  // The bundle's module-level names the factory's source refers to, for the worker's copy of it.
  const prelude =
    "var commonjsGlobal=globalThis,require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os');";
  class BlobWorker extends NodeWorker {
    constructor(url, options) {
      if (typeof url === 'string' && urls.has(url)) {
        const code = urls.get(url).replace('importScripts(e.data.urlOrBlob)', '(0,eval)(e.data.urlOrBlob)');
        super(code, { ...options, eval: true });
      } else super(url, options);
    }
    postMessage(message, transfer) {
      const m =
        message?.cmd === 'load' && texts.has(message.urlOrBlob)
          ? { ...message, urlOrBlob: prelude + texts.get(message.urlOrBlob) }
          : message;
      return super.postMessage(m, transfer);
    }
  }
  Object.defineProperty(globalThis, 'Worker', { get: () => BlobWorker, set: () => {}, configurable: true });
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(n);
}
await tf.setBackend('wasm');
await tf.ready();
const module = tf.backend().wasm;
console.log(
  `asked for ${n} threads: threaded binary ${module.PThread !== undefined ? 'loaded' : 'not loaded'}, ` +
    `getThreadsCount() = ${wasm.getThreadsCount()}, pthread workers running ${module.PThread?.runningWorkers?.length ?? 0}`,
);
for (const shape of [
  [16 * 65, 192],
  [16 * 65, 768],
]) {
  const x = tf.randomNormal(shape);
  const y = tf.randomNormal(shape);
  const ops = {
    add: () => tf.add(x, y),
    mul: () => tf.mul(x, y),
    sigmoid: () => tf.sigmoid(x),
    softmax: () => tf.softmax(x),
    sum: () => tf.sum(x, -1),
  };
  const line = [];
  for (const [name, f] of Object.entries(ops)) {
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let j = 0; j < 20; j++) f().dispose();
      best = Math.min(best, (performance.now() - t0) / 20);
    }
    line.push(`${name} ${best.toFixed(3)}`);
  }
  console.log(`[${shape.join(', ')}] fastest ms: ${line.join(', ')}`);
}
process.exit(0); // the pthread workers would keep the process alive

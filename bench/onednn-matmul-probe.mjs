// oneDNN's matmul (the optional addon, packages/kernels/native/onednn_matmul.cc) against ONNX
// Runtime's (MLAS SGEMM, the native kernels' `matMul` before it), on every distinct product of
// one ViT-tiny (batch 16, 65 tokens, d 192, 3 heads, MLP 768, 12 blocks) and one BERT-mini
// (batch 8, 128 tokens, d 256, 4 heads, FFN 1024, 4 layers) training step, forward and backward.
// The shapes and counts per step are those `nativeKernels.matMul` received in
// `node bench/speed.mjs --models vit,bert` (the heads' small Gemm products, under 0.1% of the
// work, left out). Each pair is checked against each other (max relative difference), timed in
// CPU time of this process and in wall time, forms alternating; "step" sums count x median.
// Run after `pnpm run build` and `pnpm --filter @mrl/kernels run build:native`:
//   node bench/onednn-matmul-probe.mjs [--reps 9] [--threads 1] [--models vit,bert]
import os from 'node:os';
import { arg } from './args.mjs';
import { maxRel, median, seededRandom, size } from './paired.mjs';

const { loadOnnxRuntimeKernels } = await import('../packages/kernels/dist/native/onnxruntime.js');
const { loadOneDnnMatMul } = await import('../packages/kernels/dist/native/onednn_matmul.js');

const REPS = Number(arg('reps', '9'));
const THREADS = Number(arg('threads', '1'));
const MODELS = arg('models', 'vit,bert').split(',');
const ort = loadOnnxRuntimeKernels({ threads: THREADS, convolution: 'onnxruntime', matmul: 'onnxruntime' });
if (ort === undefined) throw new Error('onnxruntime-node does not load here');
const dnnl = loadOneDnnMatMul({ threads: THREADS, fallback: ort, required: true });

// [count per step, aShape, bShape, transposeA, transposeB]
const SHAPES = {
  vit: [
    [12, [1040, 192], [192, 576], false, false], // qkv
    [12, [1040, 576], [192, 576], false, true], // its input gradient
    [12, [1040, 192], [1040, 576], true, false], // its weight gradient
    [24, [48, 65, 64], [48, 65, 64], false, true], // q k^T; dP = dO v^T
    [24, [48, 65, 65], [48, 65, 64], false, false], // P v; dQ = dS k
    [24, [48, 65, 65], [48, 65, 64], true, false], // dV = P^T dO; dK = dS^T q
    [12, [1040, 192], [192, 192], false, false], // attention output
    [12, [1040, 192], [192, 192], false, true],
    [12, [1040, 192], [1040, 192], true, false],
    [12, [1040, 192], [192, 768], false, false], // MLP up
    [12, [1040, 768], [192, 768], false, true],
    [12, [1040, 192], [1040, 768], true, false],
    [12, [1040, 768], [768, 192], false, false], // MLP down
    [12, [1040, 192], [768, 192], false, true],
    [12, [1040, 768], [1040, 192], true, false],
  ],
  bert: [
    [16, [1024, 256], [256, 256], false, false], // q, k, v, output
    [16, [1024, 256], [256, 256], false, true],
    [16, [1024, 256], [1024, 256], true, false],
    [4, [8, 4, 128, 64], [8, 4, 128, 64], false, true], // q k^T; dP = dO v^T
    [4, [8, 4, 128, 128], [8, 4, 128, 64], false, false], // P v; dQ = dS k
    [4, [8, 4, 128, 128], [8, 4, 128, 64], true, false], // dV = P^T dO; dK = dS^T q
    [4, [8, 4, 128, 64], [8, 4, 64, 128], false, false],
    [4, [8, 4, 128, 128], [8, 4, 64, 128], false, true],
    [4, [8, 4, 128, 64], [8, 4, 128, 128], true, false],
    [4, [1024, 256], [256, 1024], false, false], // FFN up
    [4, [1024, 1024], [256, 1024], false, true],
    [4, [1024, 256], [1024, 1024], true, false],
    [4, [1024, 1024], [1024, 256], false, false], // FFN down
    [4, [1024, 256], [1024, 256], false, true],
    [4, [1024, 1024], [1024, 256], true, false],
  ],
};

const random = seededRandom(7);

/** CPU and wall ms of one call. */
const timed = (fn) => {
  const c = process.cpuUsage();
  const t = performance.now();
  fn();
  const wall = performance.now() - t;
  const d = process.cpuUsage(c);
  return { cpu: (d.user + d.system) / 1000, wall };
};

/** Medians of each form over REPS alternating pairs (one warm-up each), and the paired CPU ratio. */
function pair(oldForm, newForm) {
  oldForm();
  newForm();
  const a = [];
  const b = [];
  for (let r = 0; r < REPS; r++) {
    if (r % 2 === 0) {
      a.push(timed(oldForm));
      b.push(timed(newForm));
    } else {
      b.push(timed(newForm));
      a.push(timed(oldForm));
    }
  }
  const m = (xs, k) => median(xs.map((x) => x[k]));
  return {
    oldCpu: m(a, 'cpu'),
    newCpu: m(b, 'cpu'),
    oldWall: m(a, 'wall'),
    newWall: m(b, 'wall'),
    ratio: median(a.map((x, i) => b[i].cpu / x.cpu)),
  };
}

console.log('# oneDNN matmul vs ONNX Runtime (MLAS) on ViT-tiny and BERT-mini step products');
console.log(`command: node bench/onednn-matmul-probe.mjs ${process.argv.slice(2).join(' ')}`);
console.log(
  `machine: ${os.cpus()[0]?.model ?? '?'}, ${os.availableParallelism()} cores; threads ${THREADS}; ${dnnl.detail}; load average at start: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(
  '| model | a | b | tA tB | count | ORT cpu ms | oneDNN cpu ms | paired cpu ratio | ORT wall ms | oneDNN wall ms | max rel diff | oneDNN kernel |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const model of MODELS) {
  const rows = SHAPES[model];
  if (rows === undefined) throw new Error(`unknown model ${model}; known: ${Object.keys(SHAPES).join(', ')}`);
  const sum = { oldCpu: 0, newCpu: 0, oldWall: 0, newWall: 0 };
  for (const [count, aShape, bShape, ta, tb] of rows) {
    const r = aShape.length;
    const m = ta ? aShape[r - 1] : aShape[r - 2];
    const n = tb ? bShape[r - 2] : bShape[r - 1];
    const yShape = [...aShape.slice(0, -2).map((d, i) => Math.max(d, bShape[i])), m, n];
    const a = random(size(aShape));
    const b = random(size(bShape));
    const y0 = new Float32Array(size(yShape));
    const y1 = new Float32Array(size(yShape));
    const t = pair(
      () => ort.matMul(a, aShape, b, bShape, y0, yShape, ta, tb),
      () => dnnl.matMul(a, aShape, b, bShape, y1, yShape, ta, tb),
    );
    for (const k of Object.keys(sum)) sum[k] += count * t[k];
    console.log(
      `| ${model} | ${aShape.join('x')} | ${bShape.join('x')} | ${Number(ta)} ${Number(tb)} | ${count} | ${t.oldCpu.toFixed(3)} | ${t.newCpu.toFixed(3)} | ${t.ratio.toFixed(2)} | ${t.oldWall.toFixed(3)} | ${t.newWall.toFixed(3)} | ${maxRel(y1, y0).toExponential(1)} | ${dnnl.implementation(aShape, bShape, ta, tb)} |`,
    );
  }
  console.log(
    `| ${model} step | | | | | ${sum.oldCpu.toFixed(1)} | ${sum.newCpu.toFixed(1)} | ${(sum.newCpu / sum.oldCpu).toFixed(2)} (of sums) | ${sum.oldWall.toFixed(1)} | ${sum.newWall.toFixed(1)} (${(sum.newWall / sum.oldWall).toFixed(2)}) | | |`,
  );
}
console.log(
  `load average at end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);

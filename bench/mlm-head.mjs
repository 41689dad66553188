// BERT-mini's Matryoshka MLM head, before and after the chunked kernel, in one run: full
// training steps (encoder, tied head over 30,522 tokens, AdamW) with every nesting dim ('mrl')
// and with the full dim only ('plain'), for the 'stacked' head (each prefix's [M, V] logits and
// probabilities materialised) and the 'chunked' one (vocabulary chunks streamed through all
// prefixes). The four step kinds run round-robin, so the machine's drift hits them alike; the
// ratios are medians of back-to-back pairs. Also times the head alone (loss and gradients of the
// masked states, no encoder) to show where the difference comes from. Times are the process's
// CPU time (user + system) per step: everything runs on one thread (wasm and ONNX Runtime at
// --threads 1), so this is the step's work, and it moves far less than wall time when other
// jobs share the machine; wall-clock medians are printed too.
//
// Usage (after `pnpm run build`): node bench/mlm-head.mjs [--steps 6] [--head-steps 20] [--chunk 2048]
import * as tf from '@tensorflow/tfjs';
import { AdamWOptimizer, createRandom, defaultNestingDims, initBackend, MatryoshkaLoss } from '@mrl/core';
import { BertEncoder, bertConfig, MlmModel, TiedMlmObjective } from '@mrl/text';
import { arg } from './args.mjs';

const STEPS = Number(arg('steps', '6'));
const HEAD_STEPS = Number(arg('head-steps', '20'));
const CHUNK = Number(arg('chunk', '2048'));
const backend = await initBackend('wasm', { kernels: arg('kernels', 'auto'), threads: Number(arg('threads', '1')) });
const [n, t, vocab] = [8, 128, 30522];

const random = createRandom(1);
const config = bertConfig('bert-mini', { vocabSize: vocab });
const encoder = new BertEncoder(config, random);
const d = config.embeddingDim;
const dims = defaultNestingDims(d);
const ids = tf.tensor2d(
  Array.from({ length: n * t }, (_, i) => 5 + ((i * 104729) % (vocab - 5))),
  [n, t],
  'int32',
);
// The same 15% of positions as bench/speed.mjs.
const positions = Array.from({ length: n * t }, (_, i) => i).filter((i) => (i * 2654435761) % 100 < 15);
const labels = tf.tensor1d(
  positions.map((_, i) => 5 + ((i * 7919) % (vocab - 5))),
  'int32',
);
const batch = {
  input: { ids, attentionMask: tf.ones([n, t], 'int32') },
  positions: tf.tensor1d(positions, 'int32'),
  target: { labels },
  size: n,
};

const objectives = {
  stacked: new TiedMlmObjective(encoder.tokenEmbedding, { head: 'stacked' }),
  chunked: new TiedMlmObjective(encoder.tokenEmbedding, { head: 'chunked', chunk: CHUNK }),
};
const kinds = [];
for (const head of ['stacked', 'chunked']) {
  for (const nesting of ['mrl', 'plain']) {
    const objective = objectives[head];
    const loss = new MatryoshkaLoss(
      objective,
      nesting === 'mrl' ? { embeddingDim: d } : { embeddingDim: d, dims: [d] },
    );
    const model = new MlmModel(encoder, loss);
    const variables = new Map([...model.variables()].filter(([, v]) => v.trainable));
    const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 1e-4, weightDecay: 0.01 });
    const varList = [...variables.values()];
    const step = () => {
      const { value, grads } = tf.variableGrads(() => model.loss(batch, random).total, varList);
      optimizer.apply(variables, new Map([...variables].map(([k, v]) => [k, grads[v.name]])), 1e-4);
      const out = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    // The head alone: loss and gradients of fixed masked states.
    const states = tf.randomNormal([positions.length, d], 0, 1, 'float32', 7);
    const headStep = () => {
      const table = encoder.tokenEmbedding;
      const { value, grads } = tf.variableGrads(
        () => loss.compute(states, batch.target, random).total,
        [table, objective.bias],
      );
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    };
    kinds.push({ label: `${head} ${nesting}`, head, nesting, step, headStep, times: [], wall: [], headTimes: [] });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuMs = (from) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};
const paired = (a, b) => median(a.map((x, i) => x / b[i]));

// Same parameters, same batch: the two heads' losses must agree.
const [stackedLoss, chunkedLoss] = tf.tidy(() =>
  ['stacked', 'chunked'].map(
    (h) =>
      new MatryoshkaLoss(objectives[h], { embeddingDim: d })
        .compute(tf.randomNormal([positions.length, d], 0, 1, 'float32', 9), batch.target, random)
        .total.dataSync()[0],
  ),
);
console.log(`# BERT-mini Matryoshka MLM head: stacked vs chunked`);
console.log(
  `backend: ${backend.name} (${backend.detail}); batch ${n} x ${t}, ${positions.length} masked tokens, vocab ${vocab}, d ${d}, dims ${dims.join(',')}, chunk ${CHUNK}`,
);
console.log(`same loss from both heads: stacked ${stackedLoss.toFixed(6)}, chunked ${chunkedLoss.toFixed(6)}`);

for (const k of kinds) k.headStep();
for (let r = 0; r < HEAD_STEPS; r++) {
  const order = r % 2 === 0 ? kinds : [...kinds].reverse();
  for (const k of order) {
    const t0 = process.cpuUsage();
    k.headStep();
    k.headTimes.push(cpuMs(t0));
  }
}
for (const k of kinds) k.step();
for (let r = 0; r < STEPS; r++) {
  const order = r % 2 === 0 ? kinds : [...kinds].reverse();
  for (const k of order) {
    const [t0, w0] = [process.cpuUsage(), performance.now()];
    k.step();
    k.times.push(cpuMs(t0));
    k.wall.push(performance.now() - w0);
  }
}
const by = (head, nesting) => kinds.find((k) => k.head === head && k.nesting === nesting);
console.log(
  '\n| head | plain step ms (cpu) | MRL step ms (cpu) | MRL/plain (medians / paired) | wall ms plain / MRL | head alone: plain ms (cpu) | MRL ms | MRL/plain |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const head of ['stacked', 'chunked']) {
  const [m, p] = [by(head, 'mrl'), by(head, 'plain')];
  console.log(
    `| ${head} | ${median(p.times).toFixed(0)} | ${median(m.times).toFixed(0)} | ${(median(m.times) / median(p.times)).toFixed(3)} / ${paired(m.times, p.times).toFixed(3)} | ${median(p.wall).toFixed(0)} / ${median(m.wall).toFixed(0)} | ${median(p.headTimes).toFixed(1)} | ${median(m.headTimes).toFixed(1)} | ${(median(m.headTimes) / median(p.headTimes)).toFixed(2)} |`,
  );
}
console.log(
  `chunked MRL step / stacked MRL step (paired): ${paired(by('chunked', 'mrl').times, by('stacked', 'mrl').times).toFixed(3)}; ` +
    `chunked plain / stacked plain: ${paired(by('chunked', 'plain').times, by('stacked', 'plain').times).toFixed(3)}`,
);
console.log(`tensors alive at the end: ${tf.memory().numTensors}`);

// Matryoshka-Adaptor on embeddings of a model trained without MRL: per-dim 1-NN accuracy of
// held-out queries for plain truncation, PCA (rotate then truncate) and the adaptor, in one run.
// Embeddings come from mrl-cli (commands and results in packages/core/ADAPTOR.md):
//   node apps/cli/dist/bin.js fit --modality vision --model mlp --dim 64 --dims 64 --epochs 2 --run-dir /tmp/ff64
//   node apps/cli/dist/bin.js embed --run-dir /tmp/ff64 --split train --formats npy
//   node apps/cli/dist/bin.js embed --run-dir /tmp/ff64 --split test --formats npy
//   node bench/adaptor.mjs --run-dir /tmp/ff64 [--epochs 4] [--train-limit 60000] [--dims 4,8,16,32,64]
//     [--seeds 0,1,2] [--supervised true] [--validation 6000] [--adaptor-center true] [--dim 64] [--name glyphs] [--distill 4]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applyAdaptor,
  compareByDim,
  DEFAULT_LOSS_WEIGHTS,
  fitAdaptor,
  formatComparison,
  initBackend,
  selectAdaptor,
  shorteningMethods,
} from '@mrl/core';
import { arg } from './args.mjs';

/** A C-order <f4 or <i4 .npy as { data, shape }. */
function readNpy(path) {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  const shape = /'shape':\s*\(([^)]*)\)/
    .exec(header)[1]
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(Number);
  const body = new Uint8Array(bytes.subarray(10 + headerLength));
  const data = header.includes("'<f4'") ? new Float32Array(body.buffer) : new Int32Array(body.buffer);
  return { data, shape };
}

const runDir = arg('run-dir', '/tmp/ff64');
const backend = await initBackend(arg('backend', 'wasm'));
const runStarted = performance.now();
const load = (split) => {
  const e = readNpy(join(runDir, 'embeddings', `${split}-d${arg('dim', '64')}.npy`));
  const l = readNpy(join(runDir, 'embeddings', `${split}-d${arg('dim', '64')}.labels.npy`));
  return { rows: { data: e.data, rows: e.shape[0], dim: e.shape[1] }, labels: l.data };
};
const head = (set, n) => ({
  rows: { data: set.rows.data.subarray(0, n * set.rows.dim), rows: n, dim: set.rows.dim },
  labels: set.labels.subarray(0, n),
});
const fullTrain = load('train');
const fullTest = load('test');
if (arg('center-input', 'false') === 'true') {
  // Subtract the training mean from every row first: the adaptor's similarity targets are then the
  // centred cosines that the comparison scores (it centres each method's vectors alike).
  const { data, rows, dim } = fullTrain.rows;
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows * dim; i++) mean[i % dim] += data[i] / rows;
  for (const set of [fullTrain, fullTest]) {
    for (let i = 0; i < set.rows.data.length; i++) set.rows.data[i] -= mean[i % dim];
  }
}
// Smaller database/query sets for quick trials; the README figures use all of them.
const train = head(fullTrain, Number(arg('db-limit', String(fullTrain.rows.rows))));
const test = head(fullTest, Number(arg('query-limit', String(fullTest.rows.rows))));
// --validation N holds the last N training rows out of the adaptor's (and PCA's) training: the
// snapshots (every --snapshot-every steps, default half an epoch) are scored by 1-NN of those rows
// against --val-db-limit training rows at --select-dims (default the dims <= d/8), and the best is
// kept (model selection without the test set). The test queries never enter training or selection.
const validation = Number(arg('validation', '0'));
const limit = Math.min(Number(arg('train-limit', String(fullTrain.rows.rows))), fullTrain.rows.rows - validation);
const corpus = head(fullTrain, limit).rows;
const corpusLabels = fullTrain.labels.subarray(0, limit);
const d = corpus.dim;
const dims = (arg('dims', '') || [4, 8, 16, 32, d].join(',')).split(',').map(Number);
const epochs = Number(arg('epochs', '4'));
const batchSize = Number(arg('batch-size', '256'));
// --supervised true: the ranking term on (row, same-class row) pairs of the training labels.
const supervised = arg('supervised', 'false') === 'true';
const seeds = arg('seeds', '0').split(',').map(Number);
const selectDims = (arg('select-dims', '') || dims.filter((m) => m <= d / 8).join(',')).split(',').map(Number);
const validationSet =
  validation > 0
    ? (() => {
        const start = fullTrain.rows.rows - validation;
        const dbRows = Math.min(Number(arg('val-db-limit', '20000')), limit);
        return {
          queries: { data: fullTrain.rows.data.subarray(start * d), rows: validation, dim: d },
          queryLabels: fullTrain.labels.subarray(start),
          database: head(fullTrain, dbRows).rows,
          databaseLabels: fullTrain.labels.subarray(0, dbRows),
          dims: selectDims,
        };
      })()
    : undefined;
const transforms = arg('baselines', 'true') === 'true' ? shorteningMethods(corpus) : {};
const notes = [];
for (const seed of seeds) {
  const started = performance.now();
  let last = 0;
  const { adaptor, fit, snapshots } = await fitAdaptor({
    corpus,
    dims,
    epochs,
    batchSize,
    lr: Number(arg('lr', '0.001')),
    hidden: Number(arg('hidden', String(2 * d))),
    k: Number(arg('k', '10')),
    lossWeights: {
      pairwise: Number(arg('pairwise', String(DEFAULT_LOSS_WEIGHTS.pairwise))),
      topK: Number(arg('topk', String(DEFAULT_LOSS_WEIGHTS.topK))),
      reconstruction: Number(arg('reconstruction', String(DEFAULT_LOSS_WEIGHTS.reconstruction))),
      neighbours: Number(arg('kl', String(DEFAULT_LOSS_WEIGHTS.neighbours))),
      ranking: Number(arg('ranking', String(DEFAULT_LOSS_WEIGHTS.ranking))),
      // --distill W (with --supervised true): the smaller nesting dims learn the largest one's ranking softmax.
      ...(arg('distill', '') === '' ? {} : { distill: Number(arg('distill', '')) }),
    },
    neighbourTemperature: Number(arg('temperature', '0.05')),
    rotation: arg('rotation', 'none'),
    // --adaptor-center true: the adaptor's own stored mean (AdaptorConfig.center), the library
    // form of --center-input for the adaptor (the baselines are centred by the comparison anyway).
    center: arg('adaptor-center', 'false') === 'true',
    neighbours: Number(arg('neighbours', '0')),
    ...(arg('weights', '') === '' ? {} : { dimWeights: arg('weights', '').split(',').map(Number) }),
    ...(supervised ? { labels: corpusLabels } : {}),
    ...(validationSet === undefined
      ? {}
      : { snapshotEvery: Number(arg('snapshot-every', String(Math.ceil(limit / batchSize / 2)))) }),
    seed,
    onEvent: (e) => {
      if (e.type === 'step' && (e.step - last >= 200 || e.step === e.totalSteps)) {
        last = e.step;
        process.stderr.write(`seed ${seed} step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)}\n`);
      }
    },
  });
  const fitSeconds = (performance.now() - started) / 1000;
  let weights = await adaptor.weights();
  adaptor.dispose();
  let chosen = `final step ${fit.steps}`;
  if (validationSet !== undefined) {
    const { best, scores } = await selectAdaptor(snapshots, validationSet);
    weights = best.weights;
    chosen = `step ${best.step} of ${fit.steps} (validation 1-NN at ${selectDims.join(',')}: ${snapshots
      .map((s, i) => `${s.step}:${(100 * scores[i]).toFixed(2)}`)
      .join(' ')})`;
  }
  const name = `${supervised ? 'adaptor+labels' : 'adaptor'} s${seed}`;
  const kept = weights;
  transforms[name] = (rows) => applyAdaptor(kept, rows);
  notes.push(`${name}: ${fit.steps} steps on ${limit} rows in ${fitSeconds.toFixed(0)} s; kept ${chosen}`);
}
const results = await compareByDim({
  database: train.rows,
  databaseLabels: train.labels,
  queries: test.rows,
  queryLabels: test.labels,
  dims,
  transforms,
  center: arg('center', 'true') === 'true',
});
console.log(
  `${arg('name', 'Fashion-MNIST')}, FF mlp d=${d} (no MRL): 1-NN of ${test.rows.rows} test queries against ${train.rows.rows} train embeddings`,
);
console.log(`(${backend.description ?? backend.name})`);
for (const note of notes) console.log(note);
console.log(formatComparison(results, 'classification'));
if (seeds.length > 1) {
  // Mean and spread (min..max) of the adaptor over the seeds, per dim.
  const runs = results.filter((r) => r.method.includes(' s'));
  for (let j = 0; j < dims.length; j++) {
    const v = runs.map((r) => 100 * r.metrics[j].nnTop1);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    console.log(
      `dim ${dims[j]}: adaptor mean ${mean.toFixed(2)} over ${v.length} seeds (min ${Math.min(...v).toFixed(2)}, max ${Math.max(...v).toFixed(2)})`,
    );
  }
}
console.log(`total ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);

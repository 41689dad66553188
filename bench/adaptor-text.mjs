// Matryoshka-Adaptor on a text model trained without MRL (WordNet example -> gloss pairs, one
// nesting dim = d): recall@10 and nDCG@10 of held-out anchors per dim for plain truncation, PCA,
// the unsupervised adaptor and the adaptor with the supervised ranking term, in one run.
// Commands and results in packages/core/ADAPTOR.md:
//   node packages/text/scripts/wordnet-files.mjs /tmp/wordnet
//   node apps/cli/dist/bin.js fit --modality text --task pairs --data /tmp/wordnet/pairs.jsonl --train-limit 5000 --test-limit 1000 --vocab-size 4096 --max-length 24 --model-config '{"numLayers":1,"intermediateSize":256,"dropout":0}' --dims 128 --steps 200 --warmup-steps 20 --lr 0.003 --run-dir /tmp/text-pairs
//   node bench/adaptor-text.mjs --run-dir /tmp/text-pairs --data /tmp/wordnet/pairs.jsonl [--train-limit all]
//     [--negatives false] [--cache /tmp/text-pairs/embeddings.f32] [--ranking 1] [--weights 1,1,1,1,1] [--only pairs|unsupervised]
//     [--adaptor-center true] [--kl 1] [--hidden 512] [--seed 0] [--batch-size 1024] [--scale 50] [--warmup-steps 20]
//     [--negatives true --hard-negatives true --corpus-negatives false]
//     [--distill 1 --distill-temperature 1] [--average-from 0.5 --snapshot-every 25]
import { existsSync, readFileSync } from 'node:fs';
import {
  averageSnapshots,
  compareByDim,
  fitAdaptor,
  formatComparison,
  initBackend,
  shorteningMethods,
  writeFileAtomically,
} from '@mrl/core';
import { encode, loadPairData, loadTextModel } from '@mrl/text';
import { arg } from './args.mjs';

const runDir = arg('run-dir', '/tmp/text-pairs');
const backend = await initBackend(arg('backend', 'wasm'));
const started = performance.now();
const model = await loadTextModel(runDir);
const d = model.encoder.embeddingDim;
// The same hash split as the fit (20 % of the anchors held out): the test anchors were seen by
// neither the model nor the adaptor.
const data = await loadPairData({ trainFile: arg('data', '/tmp/wordnet/pairs.jsonl') });
// --train-limit all (default): every training pair the model saw (the fit's --train-limit).
const trainCount = Math.min(
  arg('train-limit', 'all') === 'all' ? data.train.size : Number(arg('train-limit', 'all')),
  data.train.size,
);
const testCount = Math.min(Number(arg('test-limit', '1000')), data.test.size);
const pick = (source, n) => Array.from({ length: n }, (_, i) => source.examples[i]);
const train = pick(data.train, trainCount);
const test = pick(data.test, testCount);
// --negatives false leaves the training hard negatives out of the unsupervised corpus (a third
// less to embed); the corpus is then the training anchors and glosses.
const withNegatives = arg('negatives', 'true') === 'true';
const texts = [
  ...train.map((p) => p.anchor),
  ...train.map((p) => p.positive),
  ...(withNegatives ? train.map((p) => p.negative) : []),
  ...test.map((p) => p.anchor),
  ...test.map((p) => p.positive),
  ...test.map((p) => p.negative),
];
// Unit-norm full embeddings of all texts, as `mrl-cli embed` writes them (what the adaptor sees);
// --cache <file> keeps them between runs that change only the adaptor settings.
const cache = arg('cache', '');
let all;
if (cache !== '' && existsSync(cache)) {
  const bytes = readFileSync(cache);
  all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  if (all.length !== texts.length * d)
    throw new Error(`${cache} holds ${all.length / d} rows, expected ${texts.length}`);
} else {
  all = (await encode(model, texts, { dim: d })).data;
  if (cache !== '') await writeFileAtomically(cache, new Uint8Array(all.buffer, all.byteOffset, all.byteLength));
}
let at = 0;
const take = (n) => {
  const rows = { data: all.slice(at * d, (at + n) * d), rows: n, dim: d };
  at += n;
  return rows;
};
const queries = take(trainCount);
const documents = take(trainCount);
const negatives = withNegatives ? take(trainCount) : undefined;
// --corpus-negatives false keeps the embedded hard negatives out of the unsupervised corpus (for
// --hard-negatives true with the corpus of --negatives false runs).
const corpusNegatives = negatives !== undefined && arg('corpus-negatives', 'true') === 'true';
const corpus = {
  data: Float32Array.from([...queries.data, ...documents.data, ...(corpusNegatives ? negatives.data : [])]),
  rows: (corpusNegatives ? 3 : 2) * trainCount,
  dim: d,
};
// --hard-negatives true: each training pair's hard negative joins the ranking term's negatives
// (needs --negatives true, so that they are embedded).
const hardNegatives = arg('hard-negatives', 'false') === 'true';
if (hardNegatives && negatives === undefined) throw new Error('--hard-negatives true needs --negatives true');
// Candidates: the test positives (label i: relevant to anchor i) and hard negatives (no anchor's).
const testQueries = take(testCount);
const testPositives = take(testCount);
const testNegatives = take(testCount);
const database = {
  data: Float32Array.from([...testPositives.data, ...testNegatives.data]),
  rows: 2 * testCount,
  dim: d,
};
if (arg('center-input', 'false') === 'true') {
  // Subtract the training corpus' mean from every set first (as bench/adaptor.mjs --center-input).
  const mean = new Float64Array(d);
  for (let i = 0; i < corpus.data.length; i++) mean[i % d] += corpus.data[i] / corpus.rows;
  for (const set of [corpus, queries, documents, testQueries, database]) {
    for (let i = 0; i < set.data.length; i++) set.data[i] -= mean[i % d];
  }
}
const databaseLabels = Int32Array.from({ length: 2 * testCount }, (_, i) => (i < testCount ? i : -1 - i));
const queryLabels = Int32Array.from({ length: testCount }, (_, i) => i);
const embedSeconds = (performance.now() - started) / 1000;
const dims = (arg('dims', '') || [8, 16, 32, 64, d].join(',')).split(',').map(Number);
const common = {
  corpus,
  dims,
  epochs: Number(arg('epochs', '4')),
  batchSize: Number(arg('batch-size', '256')),
  lr: Number(arg('lr', '0.001')),
  // --scale: the ranking loss's inverse temperature (RankingObjective, default 20).
  ...(arg('scale', '') === '' ? {} : { rankingScale: Number(arg('scale', '')) }),
  ...(arg('warmup-steps', '') === '' ? {} : { warmupSteps: Number(arg('warmup-steps', '')) }),
  ...(arg('hidden', '') === '' ? {} : { hidden: Number(arg('hidden', '')) }),
  rotation: arg('rotation', 'pca'),
  // --adaptor-center true: the adaptor subtracts the corpus mean itself (AdaptorConfig.center).
  center: arg('adaptor-center', 'false') === 'true',
  lossWeights: {
    ...(arg('kl', '') === '' ? {} : { neighbours: Number(arg('kl', '')) }),
    ...(arg('topk', '') === '' ? {} : { topK: Number(arg('topk', '')) }),
    ...(arg('pairwise', '') === '' ? {} : { pairwise: Number(arg('pairwise', '')) }),
    ...(arg('ranking', '') === '' ? {} : { ranking: Number(arg('ranking', '')) }),
    // --distill W: self-distillation of the smaller nesting dims from the largest (DistillationObjective).
    ...(arg('distill', '') === '' ? {} : { distill: Number(arg('distill', '')) }),
  },
  ...(arg('distill-temperature', '') === '' ? {} : { distillTemperature: Number(arg('distill-temperature', '')) }),
  ...(arg('weights', '') === '' ? {} : { dimWeights: arg('weights', '').split(',').map(Number) }),
  seed: Number(arg('seed', '0')),
};
const fitStarted = performance.now();
// --only pairs: the supervised adaptor alone; --only unsupervised: the baselines and the
// unsupervised adaptor (the two halves can run side by side on cached embeddings).
const only = arg('only', '');
const unsupervised = only === 'pairs' ? undefined : await fitAdaptor(common);
// --average-from F: the supervised adaptor is the mean of its snapshots (every --snapshot-every
// steps) from fraction F of training on (averageSnapshots), instead of its last step.
const averageFrom = arg('average-from', '') === '' ? undefined : Number(arg('average-from', ''));
const supervised =
  only === 'unsupervised'
    ? undefined
    : await fitAdaptor({
        ...common,
        pairs: { queries, documents, ...(hardNegatives ? { negatives } : {}) },
        ...(averageFrom === undefined ? {} : { snapshotEvery: Number(arg('snapshot-every', '25')) }),
      });
const fitSeconds = (performance.now() - fitStarted) / 1000;
const methods = only === 'pairs' ? {} : shorteningMethods(corpus, await unsupervised.adaptor.weights());
if (supervised !== undefined) {
  const weights =
    averageFrom === undefined
      ? await supervised.adaptor.weights()
      : averageSnapshots(supervised.snapshots, averageFrom * supervised.fit.steps);
  methods['adaptor+pairs'] = shorteningMethods(corpus, weights).adaptor;
}
unsupervised?.adaptor.dispose();
supervised?.adaptor.dispose();
const results = await compareByDim({
  database,
  databaseLabels,
  queries: testQueries,
  queryLabels,
  dims,
  transforms: methods,
});
console.log(
  `WordNet example -> gloss, bert-tiny d=${d} trained on the full dim only (no MRL): ${testCount} held-out anchors over ${2 * testCount} candidates (their glosses and hard negatives)`,
);
console.log(
  `adaptors (rotation ${common.rotation}, ${common.epochs} epochs of ${common.batchSize} rows, ranking scale ${common.rankingScale ?? 20}, distill temperature ${common.distillTemperature ?? 1}${averageFrom === undefined ? '' : `, weights averaged from ${averageFrom} of training`}, loss weights ${JSON.stringify(common.lossWeights)}) on ${corpus.rows} training-split embeddings (+ all ${trainCount} training pairs${hardNegatives ? ' and their hard negatives' : ''} for adaptor+pairs), dim weights ${JSON.stringify(common.dimWeights ?? 'equal')}: ${unsupervised?.fit.steps ?? 0} + ${supervised?.fit.steps ?? 0} steps in ${fitSeconds.toFixed(0)} s; embedding took ${embedSeconds.toFixed(0)} s (${backend.description ?? backend.name})`,
);
console.log(formatComparison(results, 'retrieval'));
console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
model.dispose();

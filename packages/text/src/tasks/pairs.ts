import {
  MrlError,
  dimSeries,
  embedDataset,
  formatTable,
  MatryoshkaLoss,
  percent,
  retrievalMetrics,
  runPlan,
  Trainer,
  type Column,
  type EmbeddingMatrix,
  type RunContext,
  type RunReport,
  type RunTable,
} from '@mrl/core';
import { InBatchContrastiveObjective, PairModel, type PairBatch } from '../contrastive.js';
import { loadPairData, readCandidateTexts, type TextPair } from '../data/pairs.js';
import type { TextFitOptions } from '../fit.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import { pcaProject } from './baselines.js';
import { buildEmbedder, trainerOptions, type TextEmbedder } from './embedder.js';
import { saveTextModelInfo } from './model-file.js';

interface TrainedPairModel {
  embedder: TextEmbedder<unknown>;
  dims: number[];
  steps: number;
}

/** recall@1, recall@10, mAP@10 and nDCG@10 per dim. */
interface Recalls {
  r1: number[];
  r10: number[];
  map10: number[];
  ndcg10: number[];
}

/** One pairs run: its settings, training pairs, and the test queries against every candidate. */
interface PairsTask {
  options: TextFitOptions;
  context: RunContext;
  train: TextPair[];
  test: TextPair[];
  testName: string;
  queries: string[];
  /** Test positives, then the test hard negatives; or every text of `candidatesFile`. */
  database: string[];
  /** The candidates file the test anchors are scored against, when one is given. */
  candidatesName?: string;
  databaseLabels: Int32Array;
  queryLabels: Int32Array;
  /** Train with each pair's hard negative (the file has a negative column, filled on every training row). */
  useNegatives: boolean;
  /** The first model's tokenizer, shared by the baselines. */
  tokenizer?: TextTokenizer | undefined;
}

function embedTexts(embedder: TextEmbedder<unknown>, texts: readonly string[]): Promise<EmbeddingMatrix> {
  return embedDataset(embedder.encoder, texts.length, (idx) => embedder.input([...idx].map((i) => texts[i]!)), {
    batchSize: 128,
    dispose: embedder.release,
  });
}

async function loadPairsTask(options: TextFitOptions, context: RunContext): Promise<PairsTask> {
  const trainFile = options.trainFile!;
  const optional = <K extends keyof TextFitOptions>(key: K) =>
    options[key] === undefined ? {} : ({ [key]: options[key] } as Pick<TextFitOptions, K>);
  const data = await loadPairData({
    trainFile,
    ...optional('testFile'),
    ...optional('testFraction'),
    ...optional('anchorField'),
    ...optional('positiveField'),
    ...optional('negativeField'),
    ...optional('maxTextChars'),
    ...optional('longText'),
    seed: context.seed,
    onWarning: (line) => context.log(`warning: ${line}`),
  });
  const train = data.train.examples.slice(0, options.trainLimit ?? data.train.size);
  const test = data.test.examples.slice(0, options.testLimit ?? data.test.size);
  const queries = test.map((p) => p.anchor);
  const useNegatives = data.hasNegatives && train.every((p) => p.negative !== undefined);
  const common = { options, context, train, test, testName: data.testName, queries, useNegatives };
  if (options.candidatesFile !== undefined) {
    const candidates = await readCandidatesFor(options, test);
    context.log(
      `${trainFile}: ${train.length} training ${data.hasNegatives ? 'triplets' : 'pairs'}, ${test.length} test anchors (${data.testName}) over the ${candidates.database.length} texts of ${options.candidatesFile}`,
    );
    return { ...common, ...candidates, candidatesName: options.candidatesFile };
  }
  const negatives = test.flatMap((p) => (p.negative === undefined ? [] : [p.negative]));
  const database = [...test.map((p) => p.positive), ...negatives];
  context.log(
    `${trainFile}: ${train.length} training ${data.hasNegatives ? 'triplets' : 'pairs'}, ${test.length} test anchors (${data.testName}) over ${database.length} candidates`,
  );
  return {
    ...common,
    database,
    // Query i's relevant item is positive i; hard negatives match no query.
    databaseLabels: Int32Array.from(database, (_, i) => (i < test.length ? i : -1 - i)),
    queryLabels: Int32Array.from(queries, (_, i) => i),
  };
}

/**
 * The candidates file as the database: a candidate is relevant to a test anchor when its text is
 * the anchor's positive (texts are labelled by identity, so a text the file holds twice is
 * relevant twice). Every test positive must be in the file.
 */
async function readCandidatesFor(
  options: TextFitOptions,
  test: readonly TextPair[],
): Promise<Pick<PairsTask, 'database' | 'databaseLabels' | 'queryLabels'>> {
  const file = options.candidatesFile!;
  const database = await readCandidateTexts(file, {
    ...(options.textField === undefined ? {} : { textField: options.textField }),
    ...(options.maxTextChars === undefined ? {} : { maxTextChars: options.maxTextChars }),
  });
  const ids = new Map<string, number>();
  const databaseLabels = Int32Array.from(database, (text) => {
    let id = ids.get(text);
    if (id === undefined) ids.set(text, (id = ids.size));
    return id;
  });
  const queryLabels = Int32Array.from(test, (pair) => {
    const id = ids.get(pair.positive);
    if (id === undefined) {
      throw new MrlError(
        'invalid-argument',
        `the positive of test line ${pair.line} ("${pair.positive.slice(0, 60)}") is not a text of ${file}.`,
        `Give a candidates file that holds every positive of the pairs file (its field ${options.textField ?? 'text'}), e.g. the lexnames.jsonl that wordnet-files.mjs writes beside pairs.jsonl.`,
      );
    }
    return id;
  });
  return { database, databaseLabels, queryLabels };
}

function pairBatches(task: PairsTask, embedder: TextEmbedder<unknown>) {
  const { train, useNegatives } = task;
  return {
    size: train.length,
    batch: async (indices: Int32Array): Promise<PairBatch<unknown>> => {
      const rows = [...indices].map((i) => train[i]!);
      const q = await embedder.input(rows.map((p) => p.anchor));
      const docs = await embedder.input(rows.map((p) => p.positive));
      const negs = useNegatives ? await embedder.input(rows.map((p) => p.negative!)) : undefined;
      return {
        queries: q,
        documents: docs,
        ...(negs === undefined ? {} : { negatives: negs }),
        size: indices.length,
        dispose: () => {
          embedder.release(q);
          embedder.release(docs);
          if (negs !== undefined) embedder.release(negs);
        },
      };
    },
  };
}

/**
 * Trains one model of the run: `mrl` (the nesting dims of the options) or `ff-<m>` (`nesting`
 * [m]; below d a linear layer to m dims on the encoder).
 */
async function trainPairModel(
  task: PairsTask,
  label: string,
  nesting: number[] | undefined,
  outputDim?: number,
): Promise<TrainedPairModel> {
  const { options, context, train } = task;
  const embedder = (await buildEmbedder(
    options,
    context,
    () => train.flatMap((p) => [p.anchor, p.positive, ...(p.negative === undefined ? [] : [p.negative])]),
    {
      ...(outputDim === undefined ? {} : { outputDim }),
      ...(task.tokenizer === undefined ? {} : { tokenizer: task.tokenizer }),
    },
  )) as TextEmbedder<unknown>;
  task.tokenizer ??= embedder.tokenizer;
  const matryoshka = new MatryoshkaLoss(new InBatchContrastiveObjective(), {
    embeddingDim: embedder.encoder.embeddingDim,
    ...(nesting === undefined
      ? { ...(options.dims ? { dims: options.dims } : {}), ...(options.minDim ? { minDim: options.minDim } : {}) }
      : { dims: nesting }),
  });
  const model = new PairModel<unknown>(embedder.encoder, matryoshka);
  context.log(`training ${label} (dims ${matryoshka.dims.join(', ')})`);
  const trainer = new Trainer(model, pairBatches(task, embedder), trainerOptions(options, context, label));
  const fit = await trainer.fit();
  trainer.optimizer.dispose();
  return { embedder, dims: [...matryoshka.dims], steps: fit.steps };
}

async function recalls(
  task: PairsTask,
  q: EmbeddingMatrix,
  db: EmbeddingMatrix,
  at: readonly number[],
): Promise<Recalls> {
  const rows = await retrievalMetrics({
    database: db,
    databaseLabels: task.databaseLabels,
    queries: q,
    queryLabels: task.queryLabels,
    dims: at,
    ks: [1, 10],
    center: true,
    // A whole collection as the database: smaller similarity blocks ([chunk, rows] floats).
    ...(db.rows > 20_000 ? { chunk: 128 } : {}),
  });
  return {
    r1: rows.map((r) => r.recall[1]!),
    r10: rows.map((r) => r.recall[10]!),
    map10: rows.map((r) => r.map10),
    ndcg10: rows.map((r) => r.ndcg10),
  };
}

async function score(task: PairsTask, run: TrainedPairModel, at: readonly number[]): Promise<Recalls> {
  return recalls(task, await embedTexts(run.embedder, task.queries), await embedTexts(run.embedder, task.database), at);
}

/**
 * Baseline scores: FF per dim, truncation (`rand`) and SVD of the d-dim model without MRL, and
 * the Matryoshka model's initial encoder, not trained (`untrained`).
 */
interface PairBaselines {
  ff: Map<number, Recalls>;
  rand?: Recalls;
  svd?: Recalls;
  untrained?: Recalls;
}

/** The model without MRL at every prefix (truncation), its PCA projection (SVD), and FF at d. */
async function fullModelScores(task: PairsTask, run: TrainedPairModel, dims: number[], out: PairBaselines) {
  const compare = task.options.compare ?? [];
  const d = dims[dims.length - 1]!;
  const q = await embedTexts(run.embedder, task.queries);
  const db = await embedTexts(run.embedder, task.database);
  const rand = await recalls(task, q, db, dims);
  out.rand = rand;
  if (compare.includes('ff')) {
    const last = (xs: number[]) => [xs.at(-1)!];
    out.ff.set(d, { r1: last(rand.r1), r10: last(rand.r10), map10: last(rand.map10), ndcg10: last(rand.ndcg10) });
  }
  if (compare.includes('svd')) {
    const fitTexts = task.train.slice(0, 2_500).flatMap((p) => [p.anchor, p.positive]);
    const [qp, dbp] = pcaProject(await embedTexts(run.embedder, fitTexts), q, db) as [EmbeddingMatrix, EmbeddingMatrix];
    out.svd = await recalls(task, qp, dbp, dims);
  }
}

async function pairBaselines(task: PairsTask, dims: number[]): Promise<PairBaselines> {
  const d = dims[dims.length - 1]!;
  const out: PairBaselines = { ff: new Map() };
  for (const label of runPlan(dims, task.options.compare ?? []).labels.slice(1)) {
    const m = Number(label.slice('ff-'.length));
    const run = await trainPairModel(task, label, [m], m === d ? undefined : m);
    if (m === d) await fullModelScores(task, run, dims, out);
    else out.ff.set(m, await score(task, run, [m]));
    run.embedder.encoder.dispose();
  }
  if ((task.options.compare ?? []).includes('untrained')) {
    // The same seed builds the Matryoshka model's initial weights: random features, per prefix.
    const embedder = (await buildEmbedder(task.options, task.context, () => [], {
      ...(task.tokenizer === undefined ? {} : { tokenizer: task.tokenizer }),
    })) as TextEmbedder<unknown>;
    task.context.log('scoring untrained (the initial encoder, no training)');
    try {
      out.untrained = await score(task, { embedder, dims, steps: 0 }, dims);
    } finally {
      embedder.encoder.dispose();
    }
  }
  return out;
}

function pairsTextTable(task: PairsTask, dims: number[], mrl: Recalls, base: PairBaselines): string {
  const compare = task.options.compare ?? [];
  const { ff, rand, svd, untrained } = base;
  type Row = { j: number; m: number };
  const pair = (name: string, r1: (r: Row) => number | undefined, r10: (r: Row) => number | undefined) => [
    { header: `${name} R@1 %`, value: (r: Row) => percent(r1(r)) },
    { header: `${name} R@10 %`, value: (r: Row) => percent(r10(r)) },
  ];
  const columns: Column<Row>[] = [
    { header: 'dim', value: (r) => String(r.m) },
    ...pair(
      'MRL',
      (r) => mrl.r1[r.j],
      (r) => mrl.r10[r.j],
    ),
    ...(ff.size > 0
      ? pair(
          'FF',
          (r) => ff.get(r.m)?.r1[0],
          (r) => ff.get(r.m)?.r10[0],
        )
      : []),
    ...(rand !== undefined && compare.includes('rand')
      ? pair(
          'trunc',
          (r) => rand.r1[r.j],
          (r) => rand.r10[r.j],
        )
      : []),
    ...(svd !== undefined
      ? pair(
          'SVD',
          (r) => svd.r1[r.j],
          (r) => svd.r10[r.j],
        )
      : []),
    ...(untrained !== undefined
      ? pair(
          'untrained',
          (r) => untrained.r1[r.j],
          (r) => untrained.r10[r.j],
        )
      : []),
    { header: 'MRL mAP@10', value: (r: Row) => mrl.map10[r.j]!.toFixed(4) },
  ];
  const table = formatTable(
    dims.map((m, j) => ({ m, j })),
    columns,
  );
  const chance = (k: number) => percent(Math.min(1, k / task.database.length));
  const legend = [
    `chance: R@1 ${chance(1)}%, R@10 ${chance(10)}% (${task.database.length} candidates)`,
    ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL'] : []),
    ...(compare.includes('rand') ? ['trunc: first m dims of the model trained without MRL'] : []),
    ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions'] : []),
    ...(untrained !== undefined ? ['untrained: the initial encoder (same seed), not trained'] : []),
  ].join('\n');
  return `${table}\n${legend}`;
}

function pairsRunTable(task: PairsTask, dims: number[], mrl: Recalls, base: PairBaselines, steps: number): RunTable {
  const { options, database } = task;
  const { ff, rand, svd, untrained } = base;
  const series = (key: string, label: string, r: Recalls, at: readonly number[]) =>
    dimSeries(
      key,
      label,
      at.map((dim, j) => ({ dim, j })),
      (x) => ({ recall1: r.r1[x.j], recall10: r.r10[x.j], map10: r.map10[x.j], ndcg10: r.ndcg10[x.j] }),
    );
  const ffDims = dims.filter((m) => ff.has(m));
  const ffAt = (key: keyof Recalls) => ffDims.map((m) => ff.get(m)![key][0]!);
  const ffRecalls = { r1: ffAt('r1'), r10: ffAt('r10'), map10: ffAt('map10'), ndcg10: ffAt('ndcg10') };
  return {
    data: options.trainFile!,
    model: options.backbone ?? options.init ?? options.model ?? 'bert-tiny',
    task: `pairs, ${task.test.length} test anchors over ${database.length} candidates${task.candidatesName === undefined ? '' : ` (every text of ${task.candidatesName})`} (${task.testName}), ${steps} steps a model`,
    embeddingDim: dims[dims.length - 1]!,
    metrics: [
      { key: 'recall1', header: 'R@1 %', kind: 'percent' },
      { key: 'recall10', header: 'R@10 %', kind: 'percent' },
      { key: 'map10', header: 'mAP@10', kind: 'score' },
      { key: 'ndcg10', header: 'nDCG@10', kind: 'score' },
    ],
    series: [
      series('mrl', 'MRL', mrl, dims),
      ...(ffDims.length > 0 ? [series('ff', 'FF', ffRecalls, ffDims)] : []),
      ...(svd !== undefined ? [series('svd', 'SVD', svd, dims)] : []),
      ...(rand !== undefined && (options.compare ?? []).includes('rand') ? [series('trunc', 'Trunc', rand, dims)] : []),
      ...(untrained !== undefined ? [series('untrained', 'Untrained', untrained, dims)] : []),
    ],
    references: [
      { label: 'chance', values: { recall1: 1 / database.length, recall10: Math.min(1, 10 / database.length) } },
    ],
  };
}

/**
 * Contrastive training on the user's pairs or triplets (JSONL, CSV or TSV): the multiple-negatives
 * ranking loss on every nesting prefix through `MatryoshkaLoss` (each anchor against the batch's
 * positives, plus every hard negative of the batch when the file has a negative column), and, with
 * `compare`, FF / SVD / truncation / untrained baselines. Scored as recall@k, mAP@10 and nDCG@10 of
 * each test anchor's positive among every test positive and hard negative, or, with
 * `candidatesFile`, among every text of that file (each model embeds it once at its full dim; the
 * prefixes are sliced from that); the table's title names the file.
 */
export async function fitPairsFile(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const task = await loadPairsTask(options, context);
  const trainFile = options.trainFile!;
  const mrl = await trainPairModel(task, 'mrl', undefined);
  const dims = mrl.dims;
  await saveTextModelInfo(context.runDir, {
    task: 'pairs',
    encoder: mrl.embedder.encoder.config,
    maxLength: options.maxLength ?? 32,
    dims,
    data: trainFile,
  });
  const mrlScores = await score(task, mrl, dims);
  mrl.embedder.encoder.dispose();
  const base = await pairBaselines(task, dims);
  const { ff, rand, svd, untrained } = base;
  const { test, database } = task;
  return {
    runTable: pairsRunTable(task, dims, mrlScores, base, mrl.steps),
    title: `text pairs: ${trainFile}, ${task.train.length} training ${task.useNegatives ? 'triplets (hard negatives)' : 'pairs'}, ${test.length} test anchors over ${database.length} candidates (${task.testName}), ${mrl.steps} steps per model`,
    table: pairsTextTable(task, dims, mrlScores, base),
    metrics: {
      task: 'pairs',
      data: trainFile,
      test: task.testName,
      steps: mrl.steps,
      dims,
      recallAt1: mrlScores.r1,
      recallAt10: mrlScores.r10,
      map10: mrlScores.map10,
      ndcg10: mrlScores.ndcg10,
      candidates: database.length,
      ...(task.candidatesName === undefined ? {} : { candidatesFile: task.candidatesName }),
      ...(ff.size > 0 ? { ff: Object.fromEntries(ff) } : {}),
      ...(rand === undefined ? {} : { rand }),
      ...(svd === undefined ? {} : { svd }),
      ...(untrained === undefined ? {} : { untrained }),
    },
  };
}

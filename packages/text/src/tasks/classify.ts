import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  embedDataset,
  formatTable,
  headTop1,
  MatryoshkaLoss,
  MatryoshkaModel,
  percent,
  resolveNesting,
  retrievalMetrics,
  runPlan,
  dimSeries,
  SeparateHeads,
  SharedHead,
  type PrefixHead,
  Trainer,
  type ClassTarget,
  type Column,
  type EmbeddingMatrix,
  type RunContext,
  type RunReport,
  type SupervisedBatch,
} from '@mrl/core';
import { loadClassificationData, type ClassificationData } from '../data/classification.js';
import { loadLabelMap, saveLabelMap, LABELS_FILE } from '../data/labels.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import { pcaProject } from './baselines.js';
import type { RunTable } from '@mrl/core';
import type { TextFitOptions } from '../fit.js';
import { buildEmbedder, trainerOptions, type TextEmbedder } from './embedder.js';
import { saveTextModelInfo } from './model-file.js';

interface TrainedClassifier {
  embedder: TextEmbedder<unknown>;
  head: PrefixHead;
  dims: number[];
  steps: number;
}

/** Per-dim scores of one model: linear head top-1 and 1-NN top-1 (test texts against training texts). */
interface Scores {
  top1?: number[];
  nn: number[];
}

async function embedTexts(embedder: TextEmbedder<unknown>, texts: readonly string[]): Promise<EmbeddingMatrix> {
  return embedDataset(embedder.encoder, texts.length, (idx) => embedder.input([...idx].map((i) => texts[i]!)), {
    batchSize: 128,
    dispose: embedder.release,
  });
}

async function nearestNeighbour(
  train: EmbeddingMatrix,
  test: EmbeddingMatrix,
  data: ClassificationData,
  dims: readonly number[],
): Promise<number[]> {
  const rows = await retrievalMetrics({
    database: train,
    databaseLabels: data.trainLabels,
    queries: test,
    queryLabels: data.testLabels,
    dims,
    ks: [1],
    // PCA features are centred by construction; centring the others too compares like for like.
    center: true,
  });
  return rows.map((r) => r.nnTop1);
}

/** One classification run: its settings, the texts and labels used, and the run's shared tokenizer. */
interface ClassifyTask {
  options: TextFitOptions;
  context: RunContext;
  data: ClassificationData;
  /** `data` with the labels cut to the texts used. */
  scored: ClassificationData;
  trainTexts: string[];
  testTexts: string[];
  tokenizer?: TextTokenizer | undefined;
}

/** Reads and checks the file(s) before the run folder is touched, then writes `labels.json`. */
async function loadClassifyTask(options: TextFitOptions, context: RunContext): Promise<ClassifyTask> {
  const trainFile = options.trainFile!;
  const previous = context.resume ? await loadLabelMap(context.runDir).catch(() => undefined) : undefined;
  const optional = <K extends keyof TextFitOptions>(key: K) =>
    options[key] === undefined ? {} : ({ [key]: options[key] } as Pick<TextFitOptions, K>);
  const data = await loadClassificationData({
    trainFile,
    ...optional('testFile'),
    ...optional('testFraction'),
    ...optional('textField'),
    ...optional('labelField'),
    ...optional('maxTextChars'),
    ...optional('longText'),
    ...(previous === undefined ? {} : { labels: previous }),
    seed: context.seed,
    onWarning: (line) => context.log(`warning: ${line}`),
  });
  const trainTexts = data.train.examples.slice(0, options.trainLimit ?? data.train.size).map((e) => e.text);
  const trainLabels = data.trainLabels.subarray(0, trainTexts.length);
  const testCount = Math.min(options.testLimit ?? data.test.size, data.test.size);
  const testTexts = data.test.examples.slice(0, testCount).map((e) => e.text);
  const scored: ClassificationData = { ...data, trainLabels, testLabels: data.testLabels.subarray(0, testCount) };
  context.log(
    `${trainFile}: ${trainTexts.length} training texts, ${testTexts.length} test texts (${data.testName}), ${data.labels.size} classes; majority class ${percent(data.majority)}% of the test texts`,
  );
  await saveLabelMap(context.runDir, data.labels);
  return { options, context, data, scored, trainTexts, testTexts };
}

function classifyBatches(task: ClassifyTask, embedder: TextEmbedder<unknown>) {
  const { trainTexts, scored } = task;
  return {
    size: trainTexts.length,
    batch: async (indices: Int32Array): Promise<SupervisedBatch<unknown, ClassTarget>> => {
      const input = await embedder.input([...indices].map((i) => trainTexts[i]!));
      const labels = tf.tensor1d(
        [...indices].map((i) => scored.trainLabels[i]!),
        'int32',
      );
      return {
        input,
        target: { labels },
        size: indices.length,
        dispose: () => (embedder.release(input), labels.dispose()),
      };
    },
  };
}

/**
 * Trains one model of the run: `mrl` (the options' nesting dims and head) or `ff-<m>`
 * (`nesting` [m], one linear head; below d a linear layer to m dims on the encoder).
 */
async function trainClassifyModel(
  task: ClassifyTask,
  label: string,
  nesting: number[] | undefined,
  outputDim?: number,
): Promise<TrainedClassifier> {
  const { options, context, data } = task;
  const embedder = (await buildEmbedder(options, context, () => task.trainTexts, {
    ...(outputDim === undefined ? {} : { outputDim }),
    ...(task.tokenizer === undefined ? {} : { tokenizer: task.tokenizer }),
  })) as TextEmbedder<unknown>;
  task.tokenizer ??= embedder.tokenizer;
  const d = embedder.encoder.embeddingDim;
  const nestingOptions = {
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  };
  const dimsFor = nesting ?? resolveNesting({ embeddingDim: d, ...nestingOptions }).dims;
  // Only the Matryoshka model takes separate heads: a baseline trains one dim, and the model
  // without MRL is truncated by slicing its one head's weight rows.
  const head: PrefixHead =
    options.head === 'separate' && nesting === undefined
      ? new SeparateHeads(d, data.labels.size, dimsFor, createRandom(context.seed, 11))
      : new SharedHead(d, data.labels.size, createRandom(context.seed, 11));
  const matryoshka = new MatryoshkaLoss(new ClassificationObjective(head), {
    embeddingDim: d,
    ...(nesting === undefined ? nestingOptions : { dims: nesting }),
  });
  const model = new MatryoshkaModel<unknown, ClassTarget>(embedder.encoder, matryoshka);
  context.log(`training ${label} (dims ${matryoshka.dims.join(', ')})`);
  const trainer = new Trainer(model, classifyBatches(task, embedder), trainerOptions(options, context, label));
  const fit = await trainer.fit();
  trainer.optimizer.dispose();
  return { embedder, head, dims: [...matryoshka.dims], steps: fit.steps };
}

type Embedded = { train: EmbeddingMatrix; test: EmbeddingMatrix };

async function embedSplits(task: ClassifyTask, run: TrainedClassifier): Promise<Embedded> {
  return {
    train: await embedTexts(run.embedder, task.trainTexts),
    test: await embedTexts(run.embedder, task.testTexts),
  };
}

async function score(task: ClassifyTask, run: TrainedClassifier, at: number[], emb?: Embedded): Promise<Scores> {
  const { train: trainEmb, test: testEmb } = emb ?? (await embedSplits(task, run));
  return {
    top1: await headTop1(run.head, testEmb, task.scored.testLabels, at),
    nn: await nearestNeighbour(trainEmb, testEmb, task.scored, at),
  };
}

/**
 * Baseline scores: FF per dim; truncation (`rand`) and SVD 1-NN of the d-dim model without MRL;
 * `untrained`: 1-NN of the Matryoshka model's initial encoder (random features).
 */
interface ClassifyBaselines {
  ff: Map<number, Scores>;
  rand?: Scores;
  svd?: number[];
  untrained?: number[];
}

/**
 * 1-NN per prefix of the encoder the run starts from (the same seed builds the Matryoshka model's
 * initial weights), never trained: what the architecture and tokenizer give without learning.
 */
async function untrainedNearestNeighbour(task: ClassifyTask, dims: number[]): Promise<number[]> {
  const embedder = (await buildEmbedder(task.options, task.context, () => task.trainTexts, {
    ...(task.tokenizer === undefined ? {} : { tokenizer: task.tokenizer }),
  })) as TextEmbedder<unknown>;
  try {
    task.context.log('scoring untrained (the initial encoder, no training)');
    const emb = {
      train: await embedTexts(embedder, task.trainTexts),
      test: await embedTexts(embedder, task.testTexts),
    };
    return await nearestNeighbour(emb.train, emb.test, task.scored, dims);
  } finally {
    embedder.encoder.dispose();
  }
}

async function classifyBaselines(task: ClassifyTask, dims: number[]): Promise<ClassifyBaselines> {
  const compare = task.options.compare ?? [];
  const d = dims[dims.length - 1]!;
  const out: ClassifyBaselines = { ff: new Map() };
  for (const label of runPlan(dims, compare).labels.slice(1)) {
    const m = Number(label.slice('ff-'.length));
    const run = await trainClassifyModel(task, label, [m], m === d ? undefined : m);
    if (m === d) {
      // The model trained without MRL: its own head and 1-NN at every prefix, and PCA of its embedding.
      const emb = await embedSplits(task, run);
      const rand = await score(task, run, dims, emb);
      out.rand = rand;
      if (compare.includes('svd')) {
        const [trainPca, testPca] = pcaProject(emb.train, emb.train, emb.test) as [EmbeddingMatrix, EmbeddingMatrix];
        out.svd = await nearestNeighbour(trainPca, testPca, task.scored, dims);
      }
      if (compare.includes('ff'))
        out.ff.set(d, { top1: [rand.top1![dims.length - 1]!], nn: [rand.nn[dims.length - 1]!] });
    } else {
      out.ff.set(m, await score(task, run, [m]));
    }
    run.embedder.encoder.dispose();
  }
  if (compare.includes('untrained')) out.untrained = await untrainedNearestNeighbour(task, dims);
  return out;
}

function classifyTextTable(task: ClassifyTask, dims: number[], mrl: Scores, base: ClassifyBaselines): string {
  const compare = task.options.compare ?? [];
  const { ff, rand, svd, untrained } = base;
  const trunc = rand !== undefined && compare.includes('rand') ? rand : undefined;
  type Row = { j: number; m: number };
  const columns: Column<Row>[] = [
    { header: 'dim', value: (r) => String(r.m) },
    { header: 'MRL top-1 %', value: (r) => percent(mrl.top1![r.j]) },
    ...(ff.size > 0 ? [{ header: 'FF top-1 %', value: (r: Row) => percent(ff.get(r.m)?.top1?.[0]) }] : []),
    ...(trunc !== undefined ? [{ header: 'trunc top-1 %', value: (r: Row) => percent(trunc.top1![r.j]) }] : []),
    { header: 'MRL 1-NN %', value: (r) => percent(mrl.nn[r.j]) },
    ...(ff.size > 0 ? [{ header: 'FF 1-NN %', value: (r: Row) => percent(ff.get(r.m)?.nn[0]) }] : []),
    ...(trunc !== undefined ? [{ header: 'trunc 1-NN %', value: (r: Row) => percent(trunc.nn[r.j]) }] : []),
    ...(svd !== undefined ? [{ header: 'SVD 1-NN %', value: (r: Row) => percent(svd[r.j]) }] : []),
    ...(untrained !== undefined ? [{ header: 'untrained 1-NN %', value: (r: Row) => percent(untrained[r.j]) }] : []),
  ];
  const table = formatTable(
    dims.map((m, j) => ({ m, j })),
    columns,
  );
  const legend = [
    `majority class: ${percent(task.data.majority)}% of the test texts`,
    ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL'] : []),
    ...(compare.includes('rand') ? ['trunc: first m dims (and head columns) of the model trained without MRL'] : []),
    ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions'] : []),
    ...(untrained !== undefined ? ['untrained: the initial encoder (same seed), not trained'] : []),
    '1-NN: test text -> nearest training text (cosine on the centred prefix), its class',
  ].join('\n');
  return `${table}\n${legend}`;
}

function classifyRunTable(
  task: ClassifyTask,
  dims: number[],
  mrl: Scores,
  base: ClassifyBaselines,
  steps: number,
): RunTable {
  const { options, data } = task;
  const compare = options.compare ?? [];
  const { ff, rand, svd, untrained } = base;
  const values = (top1: number | undefined, nn: number | undefined) => ({ top1, nnTop1: nn });
  const at = dims.map((dim, j) => ({ dim, j }));
  return {
    data: options.trainFile!,
    model: options.backbone ?? options.init ?? options.model ?? 'bert-tiny',
    task: `classify, ${data.labels.size} classes, ${task.testTexts.length} test texts (${data.testName}), ${steps} steps a model`,
    embeddingDim: dims[dims.length - 1]!,
    metrics: [
      { key: 'top1', header: 'top-1 %', kind: 'percent' },
      { key: 'nnTop1', header: '1-NN %', kind: 'percent' },
    ],
    series: [
      dimSeries('mrl', options.head === 'separate' ? 'MRL' : 'MRL-E', at, (x) => values(mrl.top1?.[x.j], mrl.nn[x.j])),
      ...(ff.size > 0
        ? [
            dimSeries(
              'ff',
              'FF',
              at.filter((x) => ff.has(x.dim)),
              (x) => values(ff.get(x.dim)!.top1?.[0], ff.get(x.dim)!.nn[0]),
            ),
          ]
        : []),
      ...(svd !== undefined ? [dimSeries('svd', 'SVD', at, (x) => ({ nnTop1: svd[x.j] }))] : []),
      ...(rand !== undefined && compare.includes('rand')
        ? [dimSeries('trunc', 'Trunc', at, (x) => values(rand.top1?.[x.j], rand.nn[x.j]))]
        : []),
      ...(untrained !== undefined
        ? [dimSeries('untrained', 'Untrained', at, (x) => ({ nnTop1: untrained[x.j] }))]
        : []),
    ],
    references: [{ label: 'majority class', values: { top1: data.majority, nnTop1: data.majority } }],
    notes: [
      ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL.'] : []),
      ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions.'] : []),
      ...(compare.includes('rand') ? ['Trunc: the first m dims of the model trained without MRL.'] : []),
      ...(untrained !== undefined ? ['Untrained: the initial encoder (same seed), not trained: random features.'] : []),
    ],
  };
}

/**
 * Text classification on the user's file (JSONL, CSV or TSV): a Matryoshka model (one shared
 * MRL-E head over the nesting dims, or separate heads) and, with `compare`, the FF / SVD /
 * truncation / untrained baselines, in
 * one per-dim table whose title names the data file. `labels.json` (class names in id order) is
 * written to the run folder before training; a resumed run reuses it.
 */
export async function fitClassifyFile(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const task = await loadClassifyTask(options, context);
  const trainFile = options.trainFile!;
  const { data } = task;
  const mrl = await trainClassifyModel(task, 'mrl', undefined);
  const dims = mrl.dims;
  await saveTextModelInfo(context.runDir, {
    task: 'classify',
    encoder: mrl.embedder.encoder.config,
    maxLength: options.maxLength ?? 32,
    dims,
    labels: LABELS_FILE,
    data: trainFile,
  });
  const mrlScores = await score(task, mrl, dims);
  const base = await classifyBaselines(task, dims);
  mrl.embedder.encoder.dispose();
  const { ff, rand, svd, untrained } = base;
  return {
    runTable: classifyRunTable(task, dims, mrlScores, base, mrl.steps),
    title: `text classify: ${trainFile}, ${data.labels.size} classes, ${task.trainTexts.length} training / ${task.testTexts.length} test texts (${data.testName}), ${mrl.steps} steps per model`,
    table: classifyTextTable(task, dims, mrlScores, base),
    metrics: {
      task: 'classify',
      data: trainFile,
      test: data.testName,
      classes: data.labels.size,
      steps: mrl.steps,
      dims,
      top1: mrlScores.top1,
      nnTop1: mrlScores.nn,
      majority: data.majority,
      ...(ff.size > 0 ? { ff: Object.fromEntries(ff) } : {}),
      ...(rand === undefined ? {} : { rand }),
      ...(svd === undefined ? {} : { svd }),
      ...(untrained === undefined ? {} : { untrained }),
    },
  };
}

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
import { modelLabels, pcaProject } from './baselines.js';
import type { RunTable } from '@mrl/core';
import { buildEmbedder, trainerOptions, type TextEmbedder, type TextFitOptions } from '../fit.js';
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

/**
 * Text classification on the user's file (JSONL, CSV or TSV): a Matryoshka model (one shared
 * MRL-E head over the nesting dims) and, with `compare`, the FF / SVD / truncation baselines, in
 * one per-dim table whose title names the data file. `labels.json` (class names in id order) is
 * written to the run folder before training; a resumed run reuses it.
 */
export async function fitClassifyFile(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const trainFile = options.trainFile!;
  const warn = (line: string) => context.log(`warning: ${line}`);
  const previous = context.resume ? await loadLabelMap(context.runDir).catch(() => undefined) : undefined;
  // Everything is read and checked before the run folder is touched.
  const data = await loadClassificationData({
    trainFile,
    ...(options.testFile === undefined ? {} : { testFile: options.testFile }),
    ...(options.testFraction === undefined ? {} : { testFraction: options.testFraction }),
    ...(options.textField === undefined ? {} : { textField: options.textField }),
    ...(options.labelField === undefined ? {} : { labelField: options.labelField }),
    ...(options.maxTextChars === undefined ? {} : { maxTextChars: options.maxTextChars }),
    ...(options.longText === undefined ? {} : { longText: options.longText }),
    ...(previous === undefined ? {} : { labels: previous }),
    seed: context.seed,
    onWarning: warn,
  });
  const limit = options.trainLimit ?? data.train.size;
  const trainTexts = data.train.examples.slice(0, limit).map((e) => e.text);
  const trainLabels = data.trainLabels.subarray(0, trainTexts.length);
  const testCount = Math.min(options.testLimit ?? data.test.size, data.test.size);
  const testTexts = data.test.examples.slice(0, testCount).map((e) => e.text);
  const scored: ClassificationData = { ...data, trainLabels, testLabels: data.testLabels.subarray(0, testCount) };
  context.log(
    `${trainFile}: ${trainTexts.length} training texts, ${testTexts.length} test texts (${data.testName}), ${data.labels.size} classes; majority class ${percent(data.majority)}% of the test texts`,
  );
  await saveLabelMap(context.runDir, data.labels);

  let tokenizer: TextTokenizer | undefined;
  const train = async (
    label: string,
    nesting: number[] | undefined,
    outputDim?: number,
  ): Promise<TrainedClassifier> => {
    const embedder = (await buildEmbedder(options, context, () => trainTexts, {
      ...(outputDim === undefined ? {} : { outputDim }),
      ...(tokenizer === undefined ? {} : { tokenizer }),
    })) as TextEmbedder<unknown>;
    tokenizer ??= embedder.tokenizer;
    const d = embedder.encoder.embeddingDim;
    const dimsFor =
      nesting ??
      resolveNesting({
        embeddingDim: d,
        ...(options.dims ? { dims: options.dims } : {}),
        ...(options.minDim ? { minDim: options.minDim } : {}),
      }).dims;
    // Only the Matryoshka model takes separate heads: a baseline trains one dim, and the model
    // without MRL is truncated by slicing its one head's weight rows.
    const head: PrefixHead =
      options.head === 'separate' && nesting === undefined
        ? new SeparateHeads(d, data.labels.size, dimsFor, createRandom(context.seed, 11))
        : new SharedHead(d, data.labels.size, createRandom(context.seed, 11));
    const matryoshka = new MatryoshkaLoss(new ClassificationObjective(head), {
      embeddingDim: d,
      ...(nesting === undefined
        ? { ...(options.dims ? { dims: options.dims } : {}), ...(options.minDim ? { minDim: options.minDim } : {}) }
        : { dims: nesting }),
    });
    const model = new MatryoshkaModel<unknown, ClassTarget>(embedder.encoder, matryoshka);
    const source = {
      size: trainTexts.length,
      batch: async (indices: Int32Array): Promise<SupervisedBatch<unknown, ClassTarget>> => {
        const input = await embedder.input([...indices].map((i) => trainTexts[i]!));
        const labels = tf.tensor1d(
          [...indices].map((i) => trainLabels[i]!),
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
    context.log(`training ${label} (dims ${matryoshka.dims.join(', ')})`);
    const trainer = new Trainer(model, source, trainerOptions(options, context, label));
    const fit = await trainer.fit();
    trainer.optimizer.dispose();
    return { embedder, head, dims: [...matryoshka.dims], steps: fit.steps };
  };

  const mrl = await train('mrl', undefined);
  const dims = mrl.dims;
  const d = dims[dims.length - 1]!;
  await saveTextModelInfo(context.runDir, {
    task: 'classify',
    encoder: mrl.embedder.encoder.config,
    maxLength: options.maxLength ?? 32,
    dims,
    labels: LABELS_FILE,
    data: trainFile,
  });
  type Embedded = { train: EmbeddingMatrix; test: EmbeddingMatrix };
  const embed = async (run: TrainedClassifier): Promise<Embedded> => ({
    train: await embedTexts(run.embedder, trainTexts),
    test: await embedTexts(run.embedder, testTexts),
  });
  const score = async (run: TrainedClassifier, at: number[], emb?: Embedded): Promise<Scores> => {
    const { train: trainEmb, test: testEmb } = emb ?? (await embed(run));
    return {
      top1: await headTop1(run.head, testEmb, scored.testLabels, at),
      nn: await nearestNeighbour(trainEmb, testEmb, scored, at),
    };
  };
  const mrlScores = await score(mrl, dims);

  const compare = options.compare ?? [];
  const ff = new Map<number, Scores>();
  let rand: Scores | undefined;
  let svd: number[] | undefined;
  for (const label of modelLabels(dims, compare).slice(1)) {
    const m = Number(label.slice('ff-'.length));
    const run = await train(label, [m], m === d ? undefined : m);
    if (m === d) {
      // The model trained without MRL: its own head and 1-NN at every prefix, and PCA of its embedding.
      const emb = await embed(run);
      rand = await score(run, dims, emb);
      if (compare.includes('svd')) {
        const [trainPca, testPca] = pcaProject(emb.train, emb.train, emb.test) as [EmbeddingMatrix, EmbeddingMatrix];
        svd = await nearestNeighbour(trainPca, testPca, scored, dims);
      }
      if (compare.includes('ff')) ff.set(d, { top1: [rand.top1![dims.length - 1]!], nn: [rand.nn[dims.length - 1]!] });
    } else {
      ff.set(m, await score(run, [m]));
    }
    run.embedder.encoder.dispose();
  }
  mrl.embedder.encoder.dispose();

  type Row = { j: number; m: number };
  const columns: Column<Row>[] = [
    { header: 'dim', value: (r) => String(r.m) },
    { header: 'MRL top-1 %', value: (r) => percent(mrlScores.top1![r.j]) },
  ];
  if (ff.size > 0) columns.push({ header: 'FF top-1 %', value: (r) => percent(ff.get(r.m)?.top1?.[0]) });
  if (rand !== undefined && compare.includes('rand'))
    columns.push({ header: 'trunc top-1 %', value: (r) => percent(rand!.top1![r.j]) });
  columns.push({ header: 'MRL 1-NN %', value: (r) => percent(mrlScores.nn[r.j]) });
  if (ff.size > 0) columns.push({ header: 'FF 1-NN %', value: (r) => percent(ff.get(r.m)?.nn[0]) });
  if (rand !== undefined && compare.includes('rand'))
    columns.push({ header: 'trunc 1-NN %', value: (r) => percent(rand!.nn[r.j]) });
  if (svd !== undefined) columns.push({ header: 'SVD 1-NN %', value: (r) => percent(svd![r.j]) });
  const table = formatTable(
    dims.map((m, j) => ({ m, j })),
    columns,
  );
  const legend = [
    `majority class: ${percent(data.majority)}% of the test texts`,
    ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL'] : []),
    ...(compare.includes('rand') ? ['trunc: first m dims (and head columns) of the model trained without MRL'] : []),
    ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions'] : []),
    '1-NN: test text -> nearest training text (cosine on the centred prefix), its class',
  ].join('\n');
  const values = (top1: number | undefined, nn: number | undefined) => ({ top1, nnTop1: nn });
  const runTable: RunTable = {
    data: trainFile,
    model: options.backbone ?? options.init ?? options.model ?? 'bert-tiny',
    task: `classify, ${data.labels.size} classes, ${testTexts.length} test texts (${data.testName}), ${mrl.steps} steps a model`,
    embeddingDim: d,
    metrics: [
      { key: 'top1', header: 'top-1 %', kind: 'percent' },
      { key: 'nnTop1', header: '1-NN %', kind: 'percent' },
    ],
    series: [
      {
        key: 'mrl',
        label: options.head === 'shared' ? 'MRL-E' : 'MRL',
        rows: dims.map((dim, j) => ({ dim, values: values(mrlScores.top1?.[j], mrlScores.nn[j]) })),
      },
      ...(ff.size > 0
        ? [
            {
              key: 'ff',
              label: 'FF',
              rows: dims
                .filter((m) => ff.has(m))
                .map((dim) => ({ dim, values: values(ff.get(dim)!.top1?.[0], ff.get(dim)!.nn[0]) })),
            },
          ]
        : []),
      ...(svd !== undefined
        ? [{ key: 'svd', label: 'SVD', rows: dims.map((dim, j) => ({ dim, values: { nnTop1: svd![j] } })) }]
        : []),
      ...(rand !== undefined && compare.includes('rand')
        ? [
            {
              key: 'trunc',
              label: 'Trunc',
              rows: dims.map((dim, j) => ({ dim, values: values(rand!.top1?.[j], rand!.nn[j]) })),
            },
          ]
        : []),
    ],
    references: [{ label: 'majority class', values: { top1: data.majority, nnTop1: data.majority } }],
    notes: [
      ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL.'] : []),
      ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions.'] : []),
      ...(compare.includes('rand') ? ['Trunc: the first m dims of the model trained without MRL.'] : []),
    ],
  };
  return {
    runTable,
    title: `text classify: ${trainFile}, ${data.labels.size} classes, ${trainTexts.length} training / ${testTexts.length} test texts (${data.testName}), ${mrl.steps} steps per model`,
    table: `${table}\n${legend}`,
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
    },
  };
}

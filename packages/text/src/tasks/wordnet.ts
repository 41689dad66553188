import * as tf from '@tensorflow/tfjs';
import {
  ClassificationObjective,
  createRandom,
  embedDataset,
  formatTable,
  headTop1,
  majorityClass,
  MatryoshkaLoss,
  MatryoshkaModel,
  percent,
  permutation,
  retrievalMetrics,
  SharedHead,
  Trainer,
  type ClassTarget,
  type RunContext,
  type RunReport,
  type RunTable,
  type SupervisedBatch,
} from '@mrl/core';
import { BertEncoder } from '../bert.js';
import { InBatchContrastiveObjective, PairModel, type PairBatch } from '../contrastive.js';
import type { TextFitOptions } from '../fit.js';
import { readWordNet, WORDNET_LEXNAMES, type Synset } from '../wordnet.js';
import { buildEmbedder, layerDecayScales, saveTextModel, trainerOptions, type TextEmbedder } from './embedder.js';

/** Synsets of WordNet in a seeded order: the first `evalCount` are held out. */
async function shuffledSynsets(
  options: TextFitOptions,
  context: RunContext,
  filter: (s: Synset) => boolean,
): Promise<Synset[]> {
  const all: Synset[] = [];
  for await (const s of readWordNet(options.wordnetDir)) if (filter(s)) all.push(s);
  const order = permutation(all.length, createRandom(context.seed, 5));
  return [...order].map((i) => all[i]!);
}

/** Training batches of glosses and their lexicographer class. */
function glossBatches(train: Synset[], embedder: TextEmbedder<unknown>) {
  return {
    size: train.length,
    batch: async (indices: Int32Array): Promise<SupervisedBatch<unknown, ClassTarget>> => {
      const input = await embedder.input([...indices].map((i) => train[i]!.definition));
      const labels = tf.tensor1d(
        [...indices].map((i) => train[i]!.lexFile),
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

/** Training batches of (one of the synset's examples, drawn per batch with a seed; its gloss). */
function examplePairBatches(train: Synset[], embedder: TextEmbedder<unknown>, seed: number) {
  let draw = 0;
  return {
    size: train.length,
    batch: async (indices: Int32Array): Promise<PairBatch<unknown>> => {
      draw += 1;
      const random = createRandom(seed, 6, draw);
      const rows = [...indices].map((i) => train[i]!);
      const queries = await embedder.input(rows.map((s) => s.examples[Math.floor(random() * s.examples.length)]!));
      const documents = await embedder.input(rows.map((s) => s.definition));
      return {
        queries,
        documents,
        size: indices.length,
        dispose: () => (embedder.release(queries), embedder.release(documents)),
      };
    },
  };
}

/** WordNet gloss -> its lexicographer class (45 classes), top-1 of one shared MRL-E head per dim. */
export async function fitClassify(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const synsets = await shuffledSynsets(options, context, (s) => s.definition.length > 0);
  const evalCount = Math.min(options.testLimit ?? 1_000, Math.floor(synsets.length / 5));
  const test = synsets.slice(0, evalCount);
  const train = synsets.slice(evalCount, evalCount + (options.trainLimit ?? 20_000));
  context.log(
    `WordNet gloss -> lexicographer class: ${train.length} training, ${test.length} held-out glosses, ${WORDNET_LEXNAMES.length} classes`,
  );
  const embedder = (await buildEmbedder(options, context, () =>
    train.map((s) => s.definition),
  )) as TextEmbedder<unknown>;
  const { encoder } = embedder;
  const head = new SharedHead(encoder.embeddingDim, WORDNET_LEXNAMES.length, createRandom(context.seed, 11));
  const matryoshka = new MatryoshkaLoss(new ClassificationObjective(head), {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new MatryoshkaModel<unknown, ClassTarget>(encoder, matryoshka);
  const data = glossBatches(train, embedder);
  const fit = await new Trainer(model, data, {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  }).fit();
  const embeddings = await embedDataset(
    encoder,
    test.length,
    (idx) => embedder.input([...idx].map((i) => test[i]!.definition)),
    {
      batchSize: 128,
      dispose: embedder.release,
    },
  );
  const dims = [...matryoshka.dims];
  const top1 = await headTop1(head, embeddings, Int32Array.from(test.map((s) => s.lexFile)), dims);
  const table = formatTable(
    dims.map((m, j) => ({ m, acc: top1[j]! })),
    [
      { header: 'dim', value: (r) => String(r.m) },
      { header: 'top-1 %', value: (r) => percent(r.acc) },
    ],
  );
  if (encoder instanceof BertEncoder && embedder.tokenizer !== undefined)
    await saveTextModel(
      encoder,
      embedder.tokenizer,
      dims,
      dims.map((dim, j) => ({ dim, values: { 'top-1': top1[j]! } })),
      options,
      context,
    );
  encoder.dispose();
  const majority = majorityClass(
    train.map((s) => s.lexFile),
    test.map((s) => s.lexFile),
  );
  const runTable: RunTable = {
    data: 'wordnet lexnames (45 classes)',
    model: options.backbone ?? options.model ?? 'bert-tiny',
    task: `top-1 on ${test.length} held-out glosses, ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [{ key: 'top1', header: 'top-1 %', kind: 'percent' }],
    series: [{ key: 'mrl', label: 'MRL-E', rows: dims.map((dim, j) => ({ dim, values: { top1: top1[j]! } })) }],
    references: [
      {
        label: `majority class, always '${WORDNET_LEXNAMES[majority.label] ?? majority.label}'`,
        values: { top1: majority.accuracy },
      },
    ],
  };
  return {
    title: `text classify: WordNet gloss -> 45 lexicographer classes, top-1 on ${test.length} held-out glosses after ${fit.steps} steps`,
    table,
    metrics: {
      task: 'classify',
      steps: fit.steps,
      dims,
      top1,
      finalLoss: fit.finalLoss,
      majorityBaseline: majority.accuracy,
    },
    runTable,
  };
}

/** WordNet example sentence -> its gloss among held-out and distractor glosses, recall@1/10 per dim. */
export async function fitRetrieve(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const synsets = await shuffledSynsets(options, context, (s) => s.definition.length > 0);
  const withExamples = synsets.filter((s) => s.examples.length > 0);
  const evalCount = Math.min(options.testLimit ?? 1_000, Math.floor(withExamples.length / 5));
  const test = withExamples.slice(0, evalCount);
  const train = withExamples.slice(evalCount, evalCount + (options.trainLimit ?? 20_000));
  // Database: every held-out gloss, then distractor glosses (no training synset is excluded: they are real competitors).
  const testIds = new Set(test.map((s) => s.id));
  const requested = options.databaseSize ?? 10_000;
  const size = requested === 0 ? synsets.length : Math.max(requested, test.length);
  const database = [...test, ...synsets.filter((s) => !testIds.has(s.id)).slice(0, size - test.length)];
  context.log(
    `WordNet example -> gloss: ${train.length} training pairs, ${test.length} held-out queries over ${database.length} glosses`,
  );
  const embedder = (await buildEmbedder(options, context, () =>
    train.flatMap((s) => [s.definition, ...s.examples]),
  )) as TextEmbedder<unknown>;
  const { encoder } = embedder;
  const matryoshka = new MatryoshkaLoss(new InBatchContrastiveObjective(), {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new PairModel<unknown>(encoder, matryoshka);
  const data = examplePairBatches(train, embedder, context.seed);
  const fit = await new Trainer(model, data, {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  }).fit();
  const embed = (texts: string[]) =>
    embedDataset(encoder, texts.length, (idx) => embedder.input([...idx].map((i) => texts[i]!)), {
      batchSize: 128,
      dispose: embedder.release,
    });
  const queries = await embed(test.map((s) => s.examples[0]!));
  const documents = await embed(database.map((s) => s.definition));
  const dims = [...matryoshka.dims];
  const metrics = await retrievalMetrics({
    database: documents,
    databaseLabels: Int32Array.from(database.map((_, i) => i)),
    queries,
    queryLabels: Int32Array.from(test.map((_, i) => i)),
    dims,
    ks: [1, 10],
  });
  const table = formatTable(metrics, [
    { header: 'dim', value: (r) => String(r.dim) },
    { header: 'recall@1 %', value: (r) => percent(r.recall[1]) },
    { header: 'recall@10 %', value: (r) => percent(r.recall[10]) },
  ]);
  if (encoder instanceof BertEncoder && embedder.tokenizer !== undefined)
    await saveTextModel(
      encoder,
      embedder.tokenizer,
      dims,
      metrics.map((r) => ({ dim: r.dim, values: { 'recall@1': r.recall[1]!, 'recall@10': r.recall[10]! } })),
      options,
      context,
    );
  encoder.dispose();
  const runTable: RunTable = {
    data: `wordnet (example -> gloss, ${database.length} glosses searched)`,
    model: options.backbone ?? options.model ?? 'bert-tiny',
    task: `retrieve, ${test.length} held-out queries after ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [
      { key: 'recall1', header: 'recall@1 %', kind: 'percent' },
      { key: 'recall10', header: 'recall@10 %', kind: 'percent' },
    ],
    series: [
      {
        key: 'mrl',
        label: 'MRL',
        rows: metrics.map((r) => ({ dim: r.dim, values: { recall1: r.recall[1], recall10: r.recall[10] } })),
      },
    ],
    references: [
      { label: 'chance', values: { recall1: 1 / database.length, recall10: Math.min(1, 10 / database.length) } },
    ],
  };
  return {
    runTable,
    title: `text retrieve: WordNet example -> gloss, ${test.length} held-out queries over ${database.length} glosses after ${fit.steps} steps`,
    table,
    metrics: {
      task: 'retrieve',
      steps: fit.steps,
      dims,
      recallAt10: metrics.map((r) => r.recall[10]),
      recallAt1: metrics.map((r) => r.recall[1]),
    },
  };
}

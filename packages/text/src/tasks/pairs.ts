import {
  embedDataset,
  formatTable,
  MatryoshkaLoss,
  percent,
  retrievalMetrics,
  Trainer,
  type Column,
  type EmbeddingMatrix,
  type RunContext,
  type RunReport,
} from '@mrl/core';
import { InBatchContrastiveObjective, PairModel, type PairBatch } from '../contrastive.js';
import { loadPairData } from '../data/pairs.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import { modelLabels, pcaProject } from './baselines.js';
import type { RunTable } from '@mrl/core';
import { buildEmbedder, trainerOptions, type TextEmbedder, type TextFitOptions } from '../fit.js';
import { saveTextModelInfo } from './model-file.js';

interface TrainedPairModel {
  embedder: TextEmbedder<unknown>;
  dims: number[];
  steps: number;
}

/** recall@1 and recall@10 per dim. */
interface Recalls {
  r1: number[];
  r10: number[];
}

function embedTexts(embedder: TextEmbedder<unknown>, texts: readonly string[]): Promise<EmbeddingMatrix> {
  return embedDataset(embedder.encoder, texts.length, (idx) => embedder.input([...idx].map((i) => texts[i]!)), {
    batchSize: 128,
    dispose: embedder.release,
  });
}

/**
 * Contrastive training on the user's pairs or triplets (JSONL, CSV or TSV): the multiple-negatives
 * ranking loss on every nesting prefix through `MatryoshkaLoss` (each anchor against the batch's
 * positives, plus every hard negative of the batch when the file has a negative column), and, with
 * `compare`, FF / SVD / truncation baselines. Scored as recall@k of each test anchor's positive
 * among every test positive and hard negative; the table's title names the file.
 */
export async function fitPairsFile(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const trainFile = options.trainFile!;
  const data = await loadPairData({
    trainFile,
    ...(options.testFile === undefined ? {} : { testFile: options.testFile }),
    ...(options.testFraction === undefined ? {} : { testFraction: options.testFraction }),
    ...(options.anchorField === undefined ? {} : { anchorField: options.anchorField }),
    ...(options.positiveField === undefined ? {} : { positiveField: options.positiveField }),
    ...(options.negativeField === undefined ? {} : { negativeField: options.negativeField }),
    ...(options.maxTextChars === undefined ? {} : { maxTextChars: options.maxTextChars }),
    ...(options.longText === undefined ? {} : { longText: options.longText }),
    seed: context.seed,
    onWarning: (line) => context.log(`warning: ${line}`),
  });
  const train = data.train.examples.slice(0, options.trainLimit ?? data.train.size);
  const test = data.test.examples.slice(0, options.testLimit ?? data.test.size);
  const queries = test.map((p) => p.anchor);
  const negatives = test.flatMap((p) => (p.negative === undefined ? [] : [p.negative]));
  const database = [...test.map((p) => p.positive), ...negatives];
  // Query i's relevant item is positive i; hard negatives match no query.
  const databaseLabels = Int32Array.from(database, (_, i) => (i < test.length ? i : -1 - i));
  const queryLabels = Int32Array.from(queries, (_, i) => i);
  context.log(
    `${trainFile}: ${train.length} training ${data.hasNegatives ? 'triplets' : 'pairs'}, ${test.length} test anchors (${data.testName}) over ${database.length} candidates`,
  );
  const useNegatives = data.hasNegatives && train.every((p) => p.negative !== undefined);

  let tokenizer: TextTokenizer | undefined;
  const fitModel = async (
    label: string,
    nesting: number[] | undefined,
    outputDim?: number,
  ): Promise<TrainedPairModel> => {
    const embedder = (await buildEmbedder(
      options,
      context,
      () => train.flatMap((p) => [p.anchor, p.positive, ...(p.negative === undefined ? [] : [p.negative])]),
      { ...(outputDim === undefined ? {} : { outputDim }), ...(tokenizer === undefined ? {} : { tokenizer }) },
    )) as TextEmbedder<unknown>;
    tokenizer ??= embedder.tokenizer;
    const d = embedder.encoder.embeddingDim;
    const matryoshka = new MatryoshkaLoss(new InBatchContrastiveObjective(), {
      embeddingDim: d,
      ...(nesting === undefined
        ? { ...(options.dims ? { dims: options.dims } : {}), ...(options.minDim ? { minDim: options.minDim } : {}) }
        : { dims: nesting }),
    });
    const model = new PairModel<unknown>(embedder.encoder, matryoshka);
    const source = {
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
    context.log(`training ${label} (dims ${matryoshka.dims.join(', ')})`);
    const trainer = new Trainer(model, source, trainerOptions(options, context, label));
    const fit = await trainer.fit();
    trainer.optimizer.dispose();
    return { embedder, dims: [...matryoshka.dims], steps: fit.steps };
  };

  const recalls = async (q: EmbeddingMatrix, db: EmbeddingMatrix, at: readonly number[]): Promise<Recalls> => {
    const rows = await retrievalMetrics({
      database: db,
      databaseLabels,
      queries: q,
      queryLabels,
      dims: at,
      ks: [1, 10],
      center: true,
    });
    return { r1: rows.map((r) => r.recall[1]!), r10: rows.map((r) => r.recall[10]!) };
  };
  const score = async (run: TrainedPairModel, at: readonly number[]) =>
    recalls(await embedTexts(run.embedder, queries), await embedTexts(run.embedder, database), at);

  const mrl = await fitModel('mrl', undefined);
  const dims = mrl.dims;
  const d = dims[dims.length - 1]!;
  await saveTextModelInfo(context.runDir, {
    task: 'pairs',
    encoder: mrl.embedder.encoder.config,
    maxLength: options.maxLength ?? 32,
    dims,
    data: trainFile,
  });
  const mrlScores = await score(mrl, dims);
  mrl.embedder.encoder.dispose();

  const compare = options.compare ?? [];
  const ff = new Map<number, Recalls>();
  let rand: Recalls | undefined;
  let svd: Recalls | undefined;
  for (const label of modelLabels(dims, compare).slice(1)) {
    const m = Number(label.slice('ff-'.length));
    const run = await fitModel(label, [m], m === d ? undefined : m);
    if (m === d) {
      const q = await embedTexts(run.embedder, queries);
      const db = await embedTexts(run.embedder, database);
      rand = await recalls(q, db, dims);
      if (compare.includes('ff')) ff.set(d, { r1: [rand.r1.at(-1)!], r10: [rand.r10.at(-1)!] });
      if (compare.includes('svd')) {
        const fitTexts = train.slice(0, 2_500).flatMap((p) => [p.anchor, p.positive]);
        const [qp, dbp] = pcaProject(await embedTexts(run.embedder, fitTexts), q, db) as [
          EmbeddingMatrix,
          EmbeddingMatrix,
        ];
        svd = await recalls(qp, dbp, dims);
      }
    } else {
      ff.set(m, await score(run, [m]));
    }
    run.embedder.encoder.dispose();
  }

  type Row = { j: number; m: number };
  const columns: Column<Row>[] = [
    { header: 'dim', value: (r) => String(r.m) },
    { header: 'MRL R@1 %', value: (r) => percent(mrlScores.r1[r.j]) },
    { header: 'MRL R@10 %', value: (r) => percent(mrlScores.r10[r.j]) },
  ];
  if (ff.size > 0) {
    columns.push({ header: 'FF R@1 %', value: (r) => percent(ff.get(r.m)?.r1[0]) });
    columns.push({ header: 'FF R@10 %', value: (r) => percent(ff.get(r.m)?.r10[0]) });
  }
  if (rand !== undefined && compare.includes('rand')) {
    columns.push({ header: 'trunc R@1 %', value: (r) => percent(rand!.r1[r.j]) });
    columns.push({ header: 'trunc R@10 %', value: (r) => percent(rand!.r10[r.j]) });
  }
  if (svd !== undefined) {
    columns.push({ header: 'SVD R@1 %', value: (r) => percent(svd!.r1[r.j]) });
    columns.push({ header: 'SVD R@10 %', value: (r) => percent(svd!.r10[r.j]) });
  }
  const table = formatTable(
    dims.map((m, j) => ({ m, j })),
    columns,
  );
  const chance = (k: number) => percent(Math.min(1, k / database.length));
  const legend = [
    `chance: R@1 ${chance(1)}%, R@10 ${chance(10)}% (${database.length} candidates)`,
    ...(ff.size > 0 ? ['FF: a model per dim (linear layer to m dims); at d it is the model without MRL'] : []),
    ...(compare.includes('rand') ? ['trunc: first m dims of the model trained without MRL'] : []),
    ...(svd !== undefined ? ['SVD: the model without MRL, projected on its top-m principal directions'] : []),
  ].join('\n');
  const series = (key: string, label: string, r: Recalls, at: readonly number[]) => ({
    key,
    label,
    rows: at.map((dim, j) => ({ dim, values: { recall1: r.r1[j], recall10: r.r10[j] } })),
  });
  const ffDims = dims.filter((m) => ff.has(m));
  const runTable: RunTable = {
    data: trainFile,
    model: options.backbone ?? options.init ?? options.model ?? 'bert-tiny',
    task: `pairs, ${test.length} test anchors over ${database.length} candidates (${data.testName}), ${mrl.steps} steps a model`,
    embeddingDim: d,
    metrics: [
      { key: 'recall1', header: 'R@1 %', kind: 'percent' },
      { key: 'recall10', header: 'R@10 %', kind: 'percent' },
    ],
    series: [
      series('mrl', 'MRL', mrlScores, dims),
      ...(ffDims.length > 0
        ? [
            series(
              'ff',
              'FF',
              { r1: ffDims.map((m) => ff.get(m)!.r1[0]!), r10: ffDims.map((m) => ff.get(m)!.r10[0]!) },
              ffDims,
            ),
          ]
        : []),
      ...(svd !== undefined ? [series('svd', 'SVD', svd, dims)] : []),
      ...(rand !== undefined && compare.includes('rand') ? [series('trunc', 'Trunc', rand, dims)] : []),
    ],
    references: [
      {
        label: 'chance',
        values: { recall1: 1 / database.length, recall10: Math.min(1, 10 / database.length) },
      },
    ],
  };
  return {
    runTable,
    title: `text pairs: ${trainFile}, ${train.length} training ${useNegatives ? 'triplets (hard negatives)' : 'pairs'}, ${test.length} test anchors over ${database.length} candidates (${data.testName}), ${mrl.steps} steps per model`,
    table: `${table}\n${legend}`,
    metrics: {
      task: 'pairs',
      data: trainFile,
      test: data.testName,
      steps: mrl.steps,
      dims,
      recallAt1: mrlScores.r1,
      recallAt10: mrlScores.r10,
      candidates: database.length,
      ...(ff.size > 0 ? { ff: Object.fromEntries(ff) } : {}),
      ...(rand === undefined ? {} : { rand }),
      ...(svd === undefined ? {} : { svd }),
    },
  };
}

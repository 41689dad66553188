import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  adaptorOnnx,
  applyAdaptor,
  checkRows,
  compareByDim,
  comparisonRows,
  decodeSafetensors,
  fitAdaptor,
  formatComparison,
  initBackend,
  MrlError,
  pairLabels,
  permutation,
  createRandom,
  saveAdaptor,
  selectRows,
  shorteningMethods,
  writeFileAtomically,
  type MethodMetrics,
  type Rows,
} from '@mrl/core';
import { defineMrlCommand } from '../command.js';
import { ADAPT_FLAGS, BACKEND_FLAGS, COMMON_FLAGS } from '../flags.js';
import { decodeNpy } from '../npy.js';
import { createProgressReporter } from '../progress.js';
import { displayPath } from '../run-folder.js';

interface Embeddings {
  rows: Rows;
  labels?: Int32Array;
}

/**
 * One embedding per line: a JSON array of numbers, or an object with `embedding` (array) and an
 * optional integer `label` (all lines or none).
 */
export function parseJsonl(text: string, path: string): { rows: Rows; labels: Int32Array | undefined } {
  const vectors: number[][] = [];
  const labels: number[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path} line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new MrlError('corrupt-file', `${where} is not valid JSON: ${(cause as Error).message}.`, undefined, {
        cause,
      });
    }
    const record = Array.isArray(value) ? { embedding: value } : (value as Record<string, unknown> | null);
    const embedding = record?.embedding;
    if (!Array.isArray(embedding) || !embedding.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new MrlError(
        'invalid-argument',
        `${where}: expected an array of finite numbers or {"embedding": [...]}, got ${line.slice(0, 60)}.`,
        'Write one embedding per line; NaN/Inf (null in JSON) must be removed or re-embedded.',
      );
    }
    const first = vectors[0];
    if (first !== undefined && embedding.length !== first.length) {
      throw new MrlError(
        'invalid-argument',
        `${where} has ${embedding.length} values, the first line has ${first.length}.`,
        'Every embedding must have the same size.',
      );
    }
    const label = record?.label;
    if (label !== undefined && !Number.isInteger(label)) {
      throw new MrlError('invalid-argument', `${where}: label must be an integer, got ${JSON.stringify(label)}.`);
    }
    if (vectors.length > 0 && (label !== undefined) !== labels.length > 0) {
      throw new MrlError('invalid-argument', `${where}: give a label on every line or on none.`);
    }
    vectors.push(embedding as number[]);
    if (label !== undefined) labels.push(label as number);
  });
  if (vectors.length === 0) {
    throw new MrlError('invalid-argument', `${path} holds no embeddings.`, 'Write one embedding per line.');
  }
  const dim = vectors[0]!.length;
  return {
    rows: { data: Float32Array.from(vectors.flat()), rows: vectors.length, dim },
    labels: labels.length === 0 ? undefined : Int32Array.from(labels),
  };
}

/** Embeddings [N, d] from .npy (+ .labels.npy beside it) or .safetensors ('embeddings', 'labels'). */
export async function readEmbeddings(path: string, flag: string): Promise<Embeddings> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new MrlError('missing-file', `${flag} ${path} does not exist.`, 'Check the path.', { cause });
  }
  let rows: Rows;
  let labels: Int32Array | undefined;
  if (path.endsWith('.npy')) {
    let decoded: ReturnType<typeof decodeNpy>;
    try {
      decoded = decodeNpy(bytes, path);
    } catch (cause) {
      throw new MrlError('corrupt-file', `${(cause as Error).message}.`, 'Write the embeddings again.', { cause });
    }
    if (!(decoded.data instanceof Float32Array) || decoded.shape.length !== 2) {
      throw new MrlError(
        'invalid-argument',
        `${path} must hold a 2-D float32 array of embeddings, got ${decoded.data instanceof Float32Array ? 'float32' : 'int32'} shape (${decoded.shape.join(', ')}).`,
        'Pass the embeddings [N, d] as float32 (numpy: x.astype(np.float32)), not the labels.',
      );
    }
    rows = { data: decoded.data, rows: decoded.shape[0]!, dim: decoded.shape[1]! };
    const labelPath = path.replace(/\.npy$/, '.labels.npy');
    const labelBytes = await readFile(labelPath).catch(() => undefined);
    if (labelBytes !== undefined) {
      const l = decodeNpy(labelBytes, labelPath);
      if (l.data instanceof Int32Array && l.shape.length === 1) labels = l.data;
    }
  } else if (path.endsWith('.safetensors')) {
    const { tensors } = decodeSafetensors(bytes, path);
    const e = tensors.get('embeddings');
    if (e === undefined || e.dtype !== 'F32' || e.shape.length !== 2) {
      throw new MrlError(
        'invalid-argument',
        `${path} has no F32 [N, d] tensor named 'embeddings' (it has: ${[...tensors.keys()].join(', ') || 'none'}).`,
        'Store the embeddings under the name "embeddings", e.g. with mrl-cli embed --formats safetensors.',
      );
    }
    rows = { data: e.data as Float32Array, rows: e.shape[0]!, dim: e.shape[1]! };
    const l = tensors.get('labels');
    if (l?.dtype === 'I32' && l.shape.length === 1) labels = l.data as Int32Array;
  } else if (path.endsWith('.jsonl')) {
    ({ rows, labels } = parseJsonl(Buffer.from(bytes).toString('utf8'), path));
  } else {
    throw new MrlError(
      'invalid-argument',
      `${flag} ${path} has an unknown extension.`,
      'Pass a .npy, .safetensors or .jsonl file of [N, d] embeddings.',
    );
  }
  checkRows(rows, path);
  if (labels !== undefined && labels.length !== rows.rows) {
    throw new MrlError(
      'invalid-argument',
      `${path} has ${rows.rows} embeddings but ${labels.length} labels.`,
      'Give one label per row, or remove the labels.',
    );
  }
  return labels === undefined ? { rows } : { rows, labels };
}

/** Splits 0..n-1 by a seeded permutation into (train, held out); at least one of each. */
function split(n: number, fraction: number, seed: number, stream: number): { train: Int32Array; held: Int32Array } {
  const order = permutation(n, createRandom(seed, stream));
  const held = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  return { train: order.subarray(held), held: order.subarray(0, held) };
}

export const adaptCommand = defineMrlCommand({
  name: 'adapt',
  description:
    "Train a Matryoshka-Adaptor (Yoon et al. 2024) on embeddings of a model trained without MRL: a residual MLP f(e) = e + g(e) whose prefixes f(e)[:m] keep the full embeddings' similarities (and, with --pairs, rank each query's document first). Writes <out>/adaptor.safetensors, adaptor.json, adaptor.onnx and table.json, and prints per-dim 1-NN (with labels) and recall@10 / nDCG@10 (with --pairs) on held-out rows for truncation, PCA and the adaptor.",
  examples: [
    'mrl-cli adapt --embeddings runs/ff/embeddings/train-d64.npy --dims 8,16,32,64 --out runs/ff/adaptor',
    'mrl-cli adapt --embeddings corpus.safetensors --pairs queries.npy,docs.npy --out adaptor --rotation pca',
    'mrl-cli adapt --embeddings runs/ff/embeddings/train-d64.npy --rotation pca --center --neighbour-weight 1 --out adaptor',
    'mrl-cli embed --run-dir runs/ff --adaptor runs/ff/adaptor --dim 16',
  ],
  flags: { ...ADAPT_FLAGS, ...BACKEND_FLAGS, ...COMMON_FLAGS },
  async run(options) {
    if (options.embeddings === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli adapt needs --embeddings.',
        'Pass the embeddings to adapt, e.g. --embeddings corpus.npy (from mrl-cli embed or numpy).',
      );
    }
    if (options.out === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli adapt needs --out.',
        'Pass the folder to write, e.g. --out adaptor.',
      );
    }
    if (!(options.holdout > 0 && options.holdout < 1)) {
      throw new MrlError(
        'invalid-argument',
        `--holdout must be between 0 and 1 (exclusive), got ${options.holdout}.`,
        'e.g. --holdout 0.1 keeps 10% of the rows as queries for the table.',
      );
    }
    if (options.pairs.length !== 0 && options.pairs.length !== 2 && options.pairs.length !== 3) {
      throw new MrlError(
        'invalid-argument',
        `--pairs needs two files (queries, documents) or three (queries, documents, hard negatives), got ${options.pairs.length}.`,
        'e.g. --pairs queries.npy,docs.npy or --pairs queries.npy,docs.npy,negatives.npy',
      );
    }
    if (options['label-pairs'] && options.pairs.length !== 0) {
      throw new MrlError(
        'invalid-argument',
        '--label-pairs and --pairs both supervise the ranking loss; give one.',
        'Use --pairs queries.npy,docs.npy for (query, document) pairs, or --label-pairs to draw same-class pairs from labelled embeddings.',
      );
    }
    const corpus = await readEmbeddings(options.embeddings, '--embeddings');
    if (options['label-pairs'] && corpus.labels === undefined) {
      throw new MrlError(
        'invalid-argument',
        `--label-pairs needs labels, but ${options.embeddings} has none.`,
        'Put the labels beside it (<name>.labels.npy, a "labels" tensor in .safetensors, or "label" in each .jsonl line), or drop --label-pairs.',
      );
    }
    const pairs =
      options.pairs.length >= 2
        ? {
            queries: (await readEmbeddings(options.pairs[0]!, '--pairs')).rows,
            documents: (await readEmbeddings(options.pairs[1]!, '--pairs')).rows,
            // The third file: row i a hard negative of query i (a wrong answer close to it).
            ...(options.pairs.length === 3
              ? { negatives: (await readEmbeddings(options.pairs[2]!, '--pairs')).rows }
              : {}),
          }
        : undefined;
    const d = corpus.rows.dim;
    const backend = await initBackend(options.backend, { kernels: options.kernels });
    process.stderr.write(`backend: ${backend.name}\n`);
    const corpusSplit = split(corpus.rows.rows, options.holdout, options.seed, 1);
    const trainRows = selectRows(corpus.rows, corpusSplit.train);
    let pairSplit: { train: Int32Array; held: Int32Array } | undefined;
    if (pairs !== undefined) {
      if (pairs.queries.rows !== pairs.documents.rows) {
        throw new MrlError(
          'invalid-argument',
          `--pairs: ${options.pairs[0]} has ${pairs.queries.rows} rows but ${options.pairs[1]} has ${pairs.documents.rows}.`,
          'Row i of the documents must be the positive of query i: give both the same number of rows.',
        );
      }
      if (pairs.negatives !== undefined && pairs.negatives.rows !== pairs.queries.rows) {
        throw new MrlError(
          'invalid-argument',
          `--pairs: ${options.pairs[2]} has ${pairs.negatives.rows} rows but ${options.pairs[0]} has ${pairs.queries.rows}.`,
          'Row i of the hard negatives must be a wrong answer close to query i: give one per query.',
        );
      }
      pairSplit = split(pairs.queries.rows, options.holdout, options.seed, 2);
    }
    const { draw } = createProgressReporter(process.stderr, 'text');
    const lossWeights = {
      pairwise: options['pairwise-weight'],
      topK: options['topk-weight'],
      neighbours: options['neighbour-weight'],
      reconstruction: options['reconstruction-weight'],
      ranking: options['ranking-weight'],
      distill: options['distill-weight'],
    };
    const { adaptor, fit } = await fitAdaptor({
      corpus: trainRows,
      ...(pairs === undefined || pairSplit === undefined
        ? {}
        : {
            pairs: {
              queries: selectRows(pairs.queries, pairSplit.train),
              documents: selectRows(pairs.documents, pairSplit.train),
              ...(pairs.negatives === undefined ? {} : { negatives: selectRows(pairs.negatives, pairSplit.train) }),
            },
          }),
      // Same-class pairs from the training rows only: the held-out rows stay out of training.
      ...(options['label-pairs'] && corpus.labels !== undefined
        ? { labels: Int32Array.from(corpusSplit.train, (i) => corpus.labels![i]!) }
        : {}),
      ...(options.dims === undefined ? {} : { dims: options.dims }),
      ...(options.hidden === undefined ? {} : { hidden: options.hidden }),
      ...(options.weights === undefined ? {} : { dimWeights: options.weights }),
      rotation: options.rotation,
      center: options.center,
      epochs: options.epochs,
      batchSize: options['batch-size'],
      lr: options.lr,
      k: options['top-k'],
      lossWeights,
      seed: options.seed,
      // One part per loss term and dim is too many for a progress line: the total is shown.
      onEvent: (event) => draw(event.type === 'step' ? { ...event, parts: {} } : event, 'adapt'),
    });
    const weights = await adaptor.weights();
    adaptor.dispose();
    const dims = weights.config.dims;
    const tables: { task: 'classification' | 'retrieval'; title: string; results: MethodMetrics[] }[] = [];
    const methods = shorteningMethods(trainRows, weights);
    if (corpus.labels !== undefined) {
      const labels = corpus.labels;
      tables.push({
        task: 'classification',
        title: `1-NN of ${corpusSplit.held.length} held-out rows against ${corpusSplit.train.length} training rows (labels)`,
        results: await compareByDim({
          database: trainRows,
          databaseLabels: Int32Array.from(corpusSplit.train, (i) => labels[i]!),
          queries: selectRows(corpus.rows, corpusSplit.held),
          queryLabels: Int32Array.from(corpusSplit.held, (i) => labels[i]!),
          dims,
          transforms: methods,
        }),
      });
    }
    if (pairs !== undefined && pairSplit !== undefined) {
      const held = pairSplit.held.length;
      tables.push({
        task: 'retrieval',
        title: `retrieval of the documents of ${held} held-out queries among those ${held} documents`,
        results: await compareByDim({
          database: selectRows(pairs.documents, pairSplit.held),
          databaseLabels: pairLabels(held),
          queries: selectRows(pairs.queries, pairSplit.held),
          queryLabels: pairLabels(held),
          dims,
          transforms: methods,
        }),
      });
    }
    const out = resolve(options.out);
    const summary = {
      embeddings: options.embeddings,
      ...(options.pairs.length >= 2 ? { pairs: options.pairs } : {}),
      ...(options['label-pairs'] ? { labelPairs: true } : {}),
      trainRows: corpusSplit.train.length,
      heldOutRows: corpusSplit.held.length,
      steps: fit.steps,
      finalLoss: fit.finalLoss,
      lossWeights,
      k: options['top-k'],
      seed: options.seed,
    };
    await saveAdaptor(out, weights, { training: summary });
    await writeFileAtomically(join(out, 'adaptor.onnx'), adaptorOnnx(weights));
    await writeFileAtomically(
      join(out, 'table.json'),
      `${JSON.stringify(
        tables.map((t) => ({ task: t.task, title: t.title, rows: comparisonRows(t.results) })),
        null,
        2,
      )}\n`,
    );
    const text = tables.map((t) => `${t.title}\n${formatComparison(t.results, t.task)}`).join('\n\n');
    process.stdout.write(
      `adaptor: d=${d}, hidden ${weights.config.hidden}, rotation ${weights.config.rotation ?? 'none'}${weights.config.center === true ? ', centred' : ''}, dims ${dims.join(',')}, ${fit.steps} steps, final loss ${fit.finalLoss.toFixed(4)}\n${
        text === '' ? 'no table: the embeddings have no labels and no --pairs were given\n' : `${text}\n`
      }wrote ${displayPath(join(out, 'adaptor.safetensors'))}, adaptor.json, adaptor.onnx, table.json\n`,
    );
    // Apply once on the held-out rows so a broken adaptor fails here, not in a later service.
    applyAdaptor(weights, selectRows(corpus.rows, corpusSplit.held.subarray(0, 1)));
  },
});

import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { decodeSafetensors, formatTable, MrlError, truncateAndNormalize } from '@mrl/core';
import { adaptiveApi, type AdaptiveApi, type IndexLike, type SearchResultLike } from '../adaptive.js';
import { defineMrlCommand } from '../command.js';
import { assertFiniteRows } from '../finite.js';
import { COMMON_FLAGS, DB_SEARCH_FLAGS, DB_TABLE_FLAG, SEARCH_FLAGS } from '../flags.js';
import { decodeNpy } from '../npy.js';

export interface Queries {
  data: Float32Array;
  rows: number;
  dim: number;
  labels?: Int32Array;
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `the ${what} file ${path} does not exist.`,
      'Write it with mrl-cli embed (it prints the paths it wrote).',
      { cause },
    );
  }
}

/** Query embeddings from an embed output: .npy (+ .labels.npy beside it), .safetensors or .mrlidx. */
export async function readQueries(path: string, api: AdaptiveApi): Promise<Queries> {
  if (path.endsWith('.mrlidx')) {
    const index = api.openIndex(path);
    return {
      data: index.vectors,
      rows: index.size,
      dim: index.dim,
      ...(index.labels === undefined ? {} : { labels: index.labels }),
    };
  }
  const bytes = await readBytes(path, 'queries');
  if (path.endsWith('.npy')) {
    let decoded: ReturnType<typeof decodeNpy>;
    try {
      decoded = decodeNpy(bytes, path);
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `${(cause as Error).message}.`,
        'Write the queries again with mrl-cli embed.',
        { cause },
      );
    }
    if (!(decoded.data instanceof Float32Array) || decoded.shape.length !== 2) {
      throw new MrlError(
        'invalid-argument',
        `${path} must hold a 2-D float32 array of embeddings, got shape (${decoded.shape.join(', ')}).`,
        'Pass the embeddings .npy, not the labels.',
      );
    }
    let labels: Int32Array | undefined;
    try {
      const l = decodeNpy(await readFile(path.replace(/\.npy$/, '.labels.npy')), path);
      if (l.data instanceof Int32Array) labels = l.data;
    } catch {
      labels = undefined;
    }
    return {
      data: decoded.data,
      rows: decoded.shape[0]!,
      dim: decoded.shape[1]!,
      ...(labels === undefined ? {} : { labels }),
    };
  }
  if (path.endsWith('.safetensors')) {
    const { tensors } = decodeSafetensors(bytes, path);
    const e = tensors.get('embeddings');
    if (e === undefined || e.dtype !== 'F32' || e.shape.length !== 2) {
      throw new MrlError(
        'invalid-argument',
        `${path} has no F32 [N, d] tensor named 'embeddings'.`,
        'Pass a .safetensors file written by mrl-cli embed.',
      );
    }
    const l = tensors.get('labels');
    return {
      data: e.data as Float32Array,
      rows: e.shape[0]!,
      dim: e.shape[1]!,
      ...(l?.dtype === 'I32' ? { labels: l.data as Int32Array } : {}),
    };
  }
  throw new MrlError(
    'invalid-argument',
    `--queries ${path} has an unknown extension.`,
    'Pass a .npy, .safetensors or .mrlidx file written by mrl-cli embed.',
  );
}

function parseIntegers(text: string, flag: string, example: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || !values.every((n) => Number.isInteger(n) && n > 0)) {
    throw new MrlError(
      'invalid-argument',
      `--${flag} '${text}' must list positive integers.`,
      `e.g. --${flag} ${example}`,
    );
  }
  return values;
}

/** `Ds:K[:Dr]`, e.g. `16:200` (re-rank at the full dim) or `16:200:64`. */
function parseShortlist(
  text: string,
  d: number,
  k: number,
): { shortlistDim: number; shortlistK: number; rerankDim: number } {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new MrlError(
      'invalid-argument',
      `--shortlist '${text}' must be Ds:K or Ds:K:Dr.`,
      'e.g. --shortlist 16:200 scans every vector at 16 dims, keeps 200, re-ranks them at the full dim.',
    );
  }
  const [shortlistDim, shortlistK, rerankDim] = parts.map((p) => parseIntegers(p, 'shortlist', '16:200')[0]!) as [
    number,
    number,
    number?,
  ];
  for (const [name, value] of [
    ['Ds', shortlistDim],
    ['Dr', rerankDim ?? d],
  ] as const) {
    if (value > d)
      throw new MrlError(
        'invalid-argument',
        `--shortlist ${name} = ${value} is larger than the index dim ${d}.`,
        `Use dims up to ${d}.`,
      );
  }
  if (shortlistK < k)
    throw new MrlError(
      'invalid-argument',
      `--shortlist keeps ${shortlistK} candidates, fewer than --k ${k}.`,
      `Keep at least ${k}, e.g. --shortlist ${shortlistDim}:${Math.max(200, k)}.`,
    );
  return { shortlistDim, shortlistK, rerankDim: rerankDim ?? d };
}

/** `dims:shortlists`, e.g. `16,32,64:200,100`, or `auto`. */
function parseFunnel(text: string, d: number, k: number, api: AdaptiveApi): { dims: number[]; shortlists: number[] } {
  if (text === 'auto') return api.defaultFunnel(d, k);
  const [dimsText, listsText, extra] = text.split(':');
  if (dimsText === undefined || listsText === undefined || extra !== undefined) {
    throw new MrlError(
      'invalid-argument',
      `--funnel '${text}' must be dims:shortlists or auto.`,
      'e.g. --funnel 16,32,64:200,100 (one shortlist per stage but the last).',
    );
  }
  return {
    dims: parseIntegers(dimsText, 'funnel', '16,32,64:200,100'),
    shortlists: parseIntegers(listsText, 'funnel', '16,32,64:200,100'),
  };
}

/** The index file opened in chunks when it stores a first stage (format 2), else undefined. */
async function openChunked(file: string) {
  const { ChunkedIndex, nativeGemm } = await import('@mrl/adaptive/node');
  try {
    // The stored int8 / binary first stage is scanned on ONNX Runtime when it loads here.
    const db = ChunkedIndex.open(file, { gemm: nativeGemm() });
    if (db.firstStageSpec !== undefined) return db;
    db.close();
    return undefined;
  } catch (e) {
    // A format-1 file (written before first stages existed) has none: search it whole only.
    if (MrlError.is(e) && /has format version 1,/.test(e.message)) return undefined;
    throw e;
  }
}

export const searchCommand = defineMrlCommand({
  name: 'search',
  description:
    'Search an index written by mrl-cli embed with query embeddings: exact search at the full dim (the reference), and shortlist/re-rank or a funnel over nested prefixes, with FLOPs per query, recall@k against exact search and mAP@10.',
  examples: [
    'mrl-cli search --index runs/vision-mlp/embeddings/train-d64.mrlidx --queries runs/vision-mlp/embeddings/test-d64.npy --k 10',
    'mrl-cli search --index train.mrlidx --queries test.safetensors --shortlist 16:200',
    'mrl-cli search --index train.mrlidx --queries test.npy --funnel 16,32,64:200,100 --format json',
    'mrl-cli search --index train.mrlidx --queries test.npy --funnel auto',
    'mrl-cli search --db pglite:./vectors.pg --queries test.npy --shortlist-k 200',
    'mrl-cli search --index train-int8.mrlidx --queries test.npy --shortlist-k 100',
  ],
  flags: { ...SEARCH_FLAGS, ...DB_SEARCH_FLAGS, ...DB_TABLE_FLAG, ...COMMON_FLAGS },
  async run(options) {
    if (options.db !== undefined) {
      const { searchDatabase } = await import('./search-db.js');
      return searchDatabase(options);
    }
    if (options.index === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli search needs --index, a .mrlidx file.',
        'Write one with mrl-cli embed --run-dir <run> --split train, then pass it with --index.',
      );
    }
    if (options.queries === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli search needs --queries, query embeddings.',
        'Write them with mrl-cli embed --run-dir <run> --split test, then pass the .npy or .safetensors with --queries.',
      );
    }
    if (options['query-limit'] < 1)
      throw new MrlError(
        'invalid-argument',
        `--query-limit ${options['query-limit']} would search no queries: it must be at least 1.`,
        'Leave --query-limit out to search up to 1000 queries, or pass e.g. --query-limit 100.',
      );
    const api = adaptiveApi;
    await readBytes(options.index, 'index');
    const index: IndexLike = api.openIndex(options.index);
    const raw = await readQueries(resolve(options.queries), api);
    if (raw.dim < index.dim) {
      throw new MrlError(
        'invalid-argument',
        `the queries have ${raw.dim} dims but the index has ${index.dim}.`,
        `Embed the queries with --dim ${index.dim} (or more) too.`,
      );
    }
    const rows = Math.min(raw.rows, options['query-limit']);
    const queryData =
      raw.dim === index.dim
        ? raw.data.subarray(0, rows * index.dim)
        : truncateAndNormalize(raw.data, rows, raw.dim, index.dim);
    assertFiniteRows(raw.data, rows, raw.dim, options.queries, 'query');
    const queryLabels = raw.labels?.subarray(0, rows);
    const k = Math.min(options.k, index.size);
    if (options.k < 1)
      throw new MrlError('invalid-argument', `--k must be at least 1, got ${options.k}.`, 'e.g. --k 10');

    const timed = (run: () => SearchResultLike): { result: SearchResultLike; ms: number } => {
      const started = performance.now();
      const result = run();
      return { result, ms: performance.now() - started };
    };
    const methods: { name: string; stages: string; result: SearchResultLike; ms: number }[] = [];
    const exact = timed(() => index.search(queryData, { k }));
    methods.push({ name: 'exact', stages: `${index.dim}`, ...exact });
    if (options.shortlist !== undefined) {
      const s = parseShortlist(options.shortlist, index.dim, k);
      methods.push({
        name: 'shortlist',
        stages: `${s.shortlistDim}(${s.shortlistK}) -> ${s.rerankDim}`,
        ...timed(() => index.shortlistRerank(queryData, { ...s, k })),
      });
    }
    if (options.funnel !== undefined) {
      const f = parseFunnel(options.funnel, index.dim, k, api);
      methods.push({
        name: 'funnel',
        stages: f.dims.map((m, i) => `${m}${f.shortlists[i] === undefined ? '' : `(${f.shortlists[i]})`}`).join(' -> '),
        ...timed(() => index.funnel(queryData, { ...f, k })),
      });
    }
    // An index file with a stored first stage (mrl-cli index --first-stage): the two-stage search
    // that reads only the shortlisted rows from the file.
    const chunked = await openChunked(options.index);
    if (chunked !== undefined) {
      try {
        const spec = chunked.firstStageSpec!;
        const K = Math.max(k, Math.min(options['shortlist-k'], index.size));
        methods.push({
          name: 'stored',
          stages: `${spec.kind}(${spec.dim}) (${K}) -> ${index.dim}, rows read from the file`,
          ...timed(() => chunked.search(queryData, { k, shortlistK: K })),
        });
      } finally {
        chunked.close();
      }
    }
    const withLabels = queryLabels !== undefined && index.labels !== undefined;
    const summary = methods.map((m) => ({
      method: m.name,
      stages: m.stages,
      flopsPerQuery: m.result.flopsPerQuery,
      flopsRatio: m.result.flopsPerQuery / exact.result.flopsPerQuery,
      recall: api.recallAtK(m.result, exact.result, k),
      map10: withLabels
        ? api.meanAveragePrecisionAtK(m.result, queryLabels, index.labels!, Math.min(10, k))
        : undefined,
      msPerQuery: m.ms / rows,
    }));
    const hits = (r: SearchResultLike, q: number) =>
      Array.from({ length: r.k }, (_, i) => ({
        row: r.ids[q * r.k + i]!,
        score: r.scores[q * r.k + i]!,
        ...(index.labels === undefined ? {} : { label: index.labels[r.ids[q * r.k + i]!] }),
      }));
    const last = methods.at(-1)!;
    const shown = Array.from({ length: Math.min(options.show, rows) }, (_, q) => ({
      query: q,
      ...(queryLabels === undefined ? {} : { label: queryLabels[q] }),
      hits: hits(last.result, q),
    }));

    if (options.format === 'json') {
      process.stdout.write(
        `${JSON.stringify({ index: options.index, size: index.size, dim: index.dim, queries: rows, k, methods: summary, hitsOf: last.name, shown }, null, 2)}\n`,
      );
      return;
    }
    process.stdout.write(
      `index ${basename(options.index)}: ${index.size} vectors, d=${index.dim}; ${rows} queries, k=${k}\n`,
    );
    process.stdout.write(
      `${formatTable(summary, [
        { header: 'method', value: (s) => s.method },
        { header: 'dims (kept)', value: (s) => s.stages },
        { header: 'FLOPs/query', value: (s) => String(Math.round(s.flopsPerQuery)) },
        { header: 'vs exact', value: (s) => `${s.flopsRatio.toFixed(3)}x` },
        { header: `recall@${k}`, value: (s) => s.recall.toFixed(4) },
        { header: 'mAP@10', value: (s) => s.map10?.toFixed(4) },
        { header: 'ms/query', value: (s) => s.msPerQuery.toFixed(3) },
      ])}\n`,
    );
    if (shown.length > 0) {
      process.stdout.write(
        `\nhits of the first ${shown.length} queries (${last.name}), best first, as ` +
          `${index.labels === undefined ? 'row:score' : 'row/label:score'} (row: 0-based row of the index; score: cosine)\n`,
      );
    }
    for (const s of shown) {
      process.stdout.write(
        `query ${s.query}${s.label === undefined ? '' : ` (label ${s.label})`} [${last.name}]: ${s.hits.map((h) => `${h.row}${h.label === undefined ? '' : `/${h.label}`}:${h.score.toFixed(3)}`).join(' ')}\n`,
      );
    }
  },
});

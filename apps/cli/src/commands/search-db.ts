import { resolve } from 'node:path';
import { formatTable, MrlError, truncateAndNormalize } from '@mrl/core';
import { adaptiveApi } from '../adaptive.js';
import type { COMMON_FLAGS, DB_SEARCH_FLAGS, DB_TABLE_FLAG, Resolved, SEARCH_FLAGS } from '../flags.js';
import { readQueries } from './search.js';

type Options = Resolved<typeof SEARCH_FLAGS & typeof DB_SEARCH_FLAGS & typeof DB_TABLE_FLAG & typeof COMMON_FLAGS>;

/**
 * `mrl-cli search --db`: the two-stage SQL search (prefix HNSW shortlist, full-vector re-rank)
 * against the exact SQL scan of the same table, with recall@k and time per query.
 */
export async function searchDatabase(options: Options): Promise<void> {
  const url = options.db as string;
  if (options.queries === undefined) {
    throw new MrlError(
      'invalid-argument',
      'mrl-cli search needs --queries, query embeddings.',
      'Write them with mrl-cli embed --run-dir <run> --split test, then pass the .npy or .safetensors with --queries.',
    );
  }
  if (options.k < 1) throw new MrlError('invalid-argument', `--k must be at least 1, got ${options.k}.`, 'e.g. --k 10');
  const { openVectorDb, readDbIndexInfo, searchDb } = await import('@mrl/adaptive/node');
  const { recallAtK } = await import('@mrl/adaptive');
  const raw = await readQueries(resolve(options.queries), adaptiveApi);
  const db = await openVectorDb(url);
  try {
    const info = await readDbIndexInfo(db.client, options.table);
    if (raw.dim < info.dim) {
      throw new MrlError(
        'invalid-argument',
        `the queries have ${raw.dim} dims but table ${options.table} holds d=${info.dim} vectors.`,
        `Embed the queries with --dim ${info.dim} (or more) too.`,
      );
    }
    const rows = Math.min(raw.rows, options['query-limit']);
    const queries =
      raw.dim === info.dim
        ? raw.data.subarray(0, rows * info.dim)
        : truncateAndNormalize(raw.data, rows, raw.dim, info.dim);
    const k = Math.min(options.k, info.rows);
    const shortlistK = Math.max(options['shortlist-k'], k);
    const timed = async (exact: boolean) => {
      const started = performance.now();
      const result = await searchDb(db.client, queries, {
        table: options.table,
        k,
        shortlistK,
        efSearch: options['ef-search'],
        exact,
      });
      return { result, msPerQuery: (performance.now() - started) / rows };
    };
    const exact = await timed(true);
    const twoStage = await timed(false);
    const methods = [
      { method: 'exact SQL', stages: `${info.dim}`, ...exact, recall: 1 },
      {
        method: 'two-stage SQL',
        stages: `hnsw ${info.prefixDim}(${shortlistK}) -> ${info.dim}`,
        ...twoStage,
        recall: recallAtK(twoStage.result, exact.result, k),
      },
    ];
    const shown = Array.from({ length: Math.min(options.show, rows) }, (_, q) => ({
      query: q,
      hits: Array.from({ length: k }, (_, i) => ({
        row: twoStage.result.ids[q * k + i]!,
        score: twoStage.result.scores[q * k + i]!,
      })),
    }));
    if (options.format === 'json') {
      const summary = methods.map((m) => ({
        method: m.method,
        stages: m.stages,
        recall: m.recall,
        msPerQuery: m.msPerQuery,
      }));
      process.stdout.write(
        `${JSON.stringify({ db: db.kind, table: options.table, ...info, queries: rows, k, methods: summary, shown }, null, 2)}\n`,
      );
      return;
    }
    process.stdout.write(
      `table ${options.table} (${db.kind}): ${info.rows} vectors, d=${info.dim}, ${info.metric}; ${rows} queries, k=${k}\n`,
    );
    process.stdout.write(
      `${formatTable(methods, [
        { header: 'method', value: (m) => m.method },
        { header: 'dims (kept)', value: (m) => m.stages },
        { header: `recall@${k}`, value: (m) => m.recall.toFixed(4) },
        { header: 'ms/query', value: (m) => m.msPerQuery.toFixed(3) },
      ])}\n`,
    );
    for (const s of shown) {
      process.stdout.write(
        `query ${s.query} [two-stage SQL]: ${s.hits.map((h) => `${h.row}:${h.score.toFixed(3)}`).join(' ')}\n`,
      );
    }
  } finally {
    await db.close();
  }
}

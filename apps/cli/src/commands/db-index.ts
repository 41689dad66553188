import { MrlError } from '@mrl/core';
import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, DB_TABLE_FLAG, INDEX_FLAGS } from '../flags.js';

/** `int8:<m>` or `binary:<m>` (m in 1..d). */
function parseFirstStage(
  text: string | undefined,
  d: number,
): { kind: 'int8'; dim: number; scale: 'per-dim' } | { kind: 'binary'; dim: number } | undefined {
  if (text === undefined) return undefined;
  const match = /^(int8|binary):(\d+)$/.exec(text);
  const m = match === null ? Number.NaN : Number(match[2]);
  if (match === null || m < 1 || m > d) {
    throw new MrlError(
      'invalid-argument',
      `--first-stage '${text}' must be int8:<m> or binary:<m> with m from 1 to the index's d = ${d}.`,
      `e.g. --first-stage int8:${Math.min(64, d)}`,
    );
  }
  return match[1] === 'int8' ? { kind: 'int8', dim: m, scale: 'per-dim' } : { kind: 'binary', dim: m };
}

export const indexCommand = defineMrlCommand({
  name: 'index',
  description:
    'Copy an index written by mrl-cli embed into PostgreSQL with pgvector: ids, labels and the full vector in one table, and an HNSW index on the first m dims (subvector(embedding, 1, m)) for the two-stage search of mrl-cli search --db. pglite:<directory> is an embedded database (no server); postgres://... is a server with pgvector. All in one transaction: on failure the database is left as it was. With --to <path>.mrlidx and --first-stage int8:<m>|binary:<m> it writes an index file that stores a quantised first stage instead, which mrl-cli search then scans in memory, reading only the shortlisted rows from the file.',
  examples: [
    'mrl-cli index --from runs/vision-mlp/embeddings/train-d64.mrlidx --to pglite:./vectors.pg',
    'mrl-cli index --from train.mrlidx --to postgres://me:secret@db.example:5432/search --prefix-dim 32 --halfvec',
    'mrl-cli index --from train.mrlidx --to pglite:./vectors.pg --table products --replace',
    'mrl-cli index --from train.mrlidx --to train-int8.mrlidx --first-stage int8:64',
  ],
  flags: { ...INDEX_FLAGS, ...DB_TABLE_FLAG, ...COMMON_FLAGS },
  async run(options) {
    if (options.from === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli index needs --from, a .mrlidx file.',
        'Write one with mrl-cli embed --run-dir <run> --split train, then pass it with --from.',
      );
    }
    if (options.to === undefined) {
      throw new MrlError(
        'invalid-argument',
        'mrl-cli index needs --to, a database.',
        'e.g. --to pglite:./vectors.pg (embedded, no server) or --to postgres://user:password@host:5432/db.',
      );
    }
    const { checkWorkMem, openIndex, openVectorDb, saveIndex, writeIndexToDb } = await import('@mrl/adaptive/node');
    const workMem = options['maintenance-work-mem'];
    if (options.to.endsWith('.mrlidx')) {
      if (workMem !== undefined) {
        throw new MrlError(
          'invalid-argument',
          `--maintenance-work-mem is for databases, but --to ${options.to} is an index file.`,
          'Leave it out, or pass --to pglite:<directory> or postgres://...',
        );
      }
      const index = openIndex(options.from);
      const firstStage = parseFirstStage(options['first-stage'], index.dim);
      saveIndex(index, options.to, firstStage === undefined ? {} : { firstStage });
      process.stdout.write(
        `wrote ${index.size} vectors (d=${index.dim}) to ${options.to}${firstStage === undefined ? '' : ` with a stored ${firstStage.kind}(${firstStage.dim}) first stage: mrl-cli search --index ${options.to} reads only the shortlisted rows`}\n`,
      );
      return;
    }
    if (options['first-stage'] !== undefined) {
      throw new MrlError(
        'invalid-argument',
        `--first-stage is for index files, but --to ${options.to} is a database.`,
        'Pass --to <path>.mrlidx, or leave --first-stage out (the database indexes the prefix with --prefix-dim).',
      );
    }
    if (workMem !== undefined) checkWorkMem(workMem);
    const index = openIndex(options.from);
    const db = await openVectorDb(options.to);
    try {
      const started = performance.now();
      const info = await writeIndexToDb(db.client, index, {
        table: options.table,
        halfvec: options.halfvec,
        replace: options.replace,
        // An embedded database's default (64MB) makes a million-row build run on disk.
        ...(workMem !== undefined || db.kind === 'pglite' ? { maintenanceWorkMem: workMem ?? '1GB' } : {}),
        ...(options['prefix-dim'] === undefined ? {} : { prefixDim: options['prefix-dim'] }),
      });
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `wrote ${info.rows} vectors (d=${info.dim}, ${info.type}) to table ${options.table} of ${db.kind === 'pglite' ? options.to : 'the PostgreSQL server'} in ${seconds.toFixed(1)} s; HNSW index on subvector(embedding, 1, ${info.prefixDim}), ${info.metric}\n`,
      );
    } finally {
      await db.close();
    }
  },
});

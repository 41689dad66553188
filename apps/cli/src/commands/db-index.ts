import { MrlError } from '@mrl/core';
import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, DB_TABLE_FLAG, INDEX_FLAGS } from '../flags.js';

export const indexCommand = defineMrlCommand({
  name: 'index',
  description:
    'Copy an index written by mrl-cli embed into PostgreSQL with pgvector: ids, labels and the full vector in one table, and an HNSW index on the first m dims (subvector(embedding, 1, m)) for the two-stage search of mrl-cli search --db. pglite:<directory> is an embedded database (no server); postgres://... is a server with pgvector. All in one transaction: on failure the database is left as it was.',
  examples: [
    'mrl-cli index --from runs/vision-mlp/embeddings/train-d64.mrlidx --to pglite:./vectors.pg',
    'mrl-cli index --from train.mrlidx --to postgres://me:secret@db.example:5432/search --prefix-dim 32 --halfvec',
    'mrl-cli index --from train.mrlidx --to pglite:./vectors.pg --table products --replace',
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
    const { openIndex, openVectorDb, writeIndexToDb } = await import('@mrl/adaptive/node');
    const index = openIndex(options.from);
    const db = await openVectorDb(options.to);
    try {
      const started = performance.now();
      const info = await writeIndexToDb(db.client, index, {
        table: options.table,
        halfvec: options.halfvec,
        replace: options.replace,
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

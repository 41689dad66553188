/*
 * A Matryoshka index in PostgreSQL with pgvector: ids, labels and the full vector in one table,
 * an HNSW expression index on the first m dims (`subvector(embedding, 1, m)`), and the paper's
 * two-stage search (prefix HNSW shortlist, full-vector re-rank) as one SQL statement.
 *
 * The embedded database is PGlite (Postgres compiled to wasm, npm `@electric-sql/pglite`, with
 * pgvector from `@electric-sql/pglite-pgvector`), so nothing needs a server; the same SQL runs
 * on a PostgreSQL server with pgvector through `pg`, which is the way to shard (Citus) when one
 * machine is not enough. Both are loaded on first use, so the rest of this entry stays light.
 *
 * Nothing half-written: the table, its rows and its index are created in one transaction (DDL
 * is transactional in PostgreSQL), so a failure leaves the database as it was.
 */
import { MrlError } from '@mrl/core/errors';
import type { RankedHits } from '../metrics.js';
import { assertFiniteRows, assertIntInRange, rowCount } from '../validate.js';
import type { MatryoshkaIndex, Metric } from '../vector-index.js';

/** What PGlite's and pg's clients have in common. */
export interface SqlClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** An open database: its client and how to close it. */
export interface VectorDb {
  readonly client: SqlClient;
  /** 'pglite' (embedded) or 'postgres' (a server through pg). */
  readonly kind: 'pglite' | 'postgres';
  readonly url: string;
  close(): Promise<void>;
}

/** Options of {@link writeIndexToDb}. */
export interface WriteDbOptions {
  /** Table name (lower-case letters, digits, _). Default 'mrl_vectors'. */
  readonly table?: string;
  /** m: the prefix dim of the HNSW index. Default min(64, d). */
  readonly prefixDim?: number;
  /** Store `halfvec` (2 bytes per dim) instead of `vector` (4). Default false. */
  readonly halfvec?: boolean;
  /** HNSW M. Default 16. */
  readonly connectivity?: number;
  /** HNSW ef_construction. Default 64. */
  readonly efConstruction?: number;
  /** Replace an existing table of that name (in the same transaction). Default false: refuse. */
  readonly replace?: boolean;
  /**
   * PostgreSQL's `maintenance_work_mem` for the index build (`SET LOCAL`, this transaction only),
   * e.g. '1GB'. pgvector builds the HNSW graph in this much memory and, once the graph outgrows
   * it, goes on building on disk page by page, several times slower (at 1,000,000 rows of a 64-dim
   * prefix the graph needs ~0.5 GB). Default: the database's own setting.
   */
  readonly maintenanceWorkMem?: string;
}

/** What {@link writeIndexToDb} stores as the table's comment, and the search reads back. */
export interface DbIndexInfo {
  readonly format: 'mrl-pgvector-1';
  readonly dim: number;
  readonly prefixDim: number;
  readonly metric: Metric;
  readonly type: 'vector' | 'halfvec';
  readonly rows: number;
}

/** Options of {@link searchDb}. */
export interface DbSearchOptions {
  readonly table?: string;
  readonly k: number;
  /** K: rows the prefix HNSW shortlists per query. Default max(100, 10 k). */
  readonly shortlistK?: number;
  /** hnsw.ef_search (raised to K when smaller, since HNSW returns at most ef_search rows). */
  readonly efSearch?: number;
  /** Skip the HNSW stage: exact scan of the full vectors (the reference). Default false. */
  readonly exact?: boolean;
}

/** Hits of {@link searchDb}: row ids (the index's row numbers) and scores, best first. */
export interface DbSearchResult extends RankedHits {
  readonly ids: Int32Array;
  readonly scores: Float32Array;
}

const DEFAULT_TABLE = 'mrl_vectors';

function checkTable(table: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) {
    throw new MrlError(
      'invalid-argument',
      `table name '${table}' is not a plain SQL identifier.`,
      'Use lower-case letters, digits and _, starting with a letter or _ (at most 63 characters).',
    );
  }
  return table;
}

/**
 * Opens `url`: `pglite:<directory>` (created when missing), `pglite:memory` (in memory), or
 * `postgres://user:pass@host:port/db` / `postgresql://...` (a server with pgvector installed).
 * Creates the vector extension when it is missing.
 *
 * @example
 * ```ts
 * const db = await openVectorDb('pglite:./vectors.pg');
 * await writeIndexToDb(db.client, index, { prefixDim: 64 });
 * await db.close();
 * ```
 */
export async function openVectorDb(url: string): Promise<VectorDb> {
  if (url.startsWith('pglite:')) {
    const where = url.slice('pglite:'.length);
    if (where === '') {
      throw new MrlError(
        'invalid-argument',
        `database URL '${url}' names no directory.`,
        'Use pglite:<directory> (e.g. pglite:./vectors.pg) or pglite:memory.',
      );
    }
    const { PGlite } = await import('@electric-sql/pglite');
    const { vector } = await import('@electric-sql/pglite-pgvector');
    let db: InstanceType<typeof PGlite>;
    try {
      db = await PGlite.create(where === 'memory' ? undefined : where, { extensions: { vector } });
      await db.exec('CREATE EXTENSION IF NOT EXISTS vector');
    } catch (cause) {
      throw new MrlError(
        'invalid-argument',
        `cannot open the PGlite database ${where}: ${(cause as Error).message}.`,
        'Pass a directory PGlite can create or one it wrote before.',
        { cause },
      );
    }
    return { client: db, kind: 'pglite', url, close: () => db.close() };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('CREATE EXTENSION IF NOT EXISTS vector');
    } catch (cause) {
      await client.end().catch(() => undefined);
      throw new MrlError(
        'invalid-argument',
        `cannot use the PostgreSQL database ${redact(url)}: ${(cause as Error).message}.`,
        'Check that the server runs and is reachable, the credentials, and that pgvector is installed there (CREATE EXTENSION vector).',
        { cause },
      );
    }
    return { client, kind: 'postgres', url, close: () => client.end() };
  }
  throw new MrlError(
    'invalid-argument',
    `'${url}' is not a database URL.`,
    'Use pglite:<directory>, pglite:memory or postgres://user:password@host:port/database.',
  );
}

/**
 * Refuses a `maintenance_work_mem` other than a whole number of kB, MB or GB (it is spliced
 * into SQL, so nothing else may pass).
 *
 * @example
 * ```ts
 * checkWorkMem('1GB');
 * ```
 */
export function checkWorkMem(size: string): void {
  if (!/^[1-9]\d{0,6}(kB|MB|GB)$/.test(size)) {
    throw new MrlError(
      'invalid-argument',
      `maintenance_work_mem '${size}' is not a size this accepts.`,
      'Give a whole number followed by kB, MB or GB, e.g. --maintenance-work-mem 1GB.',
    );
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*):[^@]*@/, '$1:***@');
}

/** pgvector's text form of a vector: float32 values print and parse back bit-exactly. */
function vectorText(data: Float32Array, offset: number, length: number): string {
  let s = '[';
  for (let j = 0; j < length; j++) s += (j === 0 ? '' : ',') + String(data[offset + j]);
  return `${s}]`;
}

/** Operator class and distance operator of a metric. */
function ops(metric: Metric, type: 'vector' | 'halfvec'): { opclass: string; operator: string } {
  return metric === 'cosine'
    ? { opclass: `${type}_cosine_ops`, operator: '<=>' }
    : { opclass: `${type}_ip_ops`, operator: '<#>' };
}

/**
 * Writes every row of `index` into a new table `(id int primary key, ext_id text, label int,
 * embedding vector(d))` and builds the HNSW index on `subvector(embedding, 1, m)`, all in one
 * transaction. The index's metric picks the operator class (cosine or inner product); the
 * table comment records dim, m, metric and type for {@link searchDb}.
 *
 * @example
 * ```ts
 * await writeIndexToDb(db.client, index, { table: 'products', prefixDim: 32, halfvec: true });
 * ```
 */
export async function writeIndexToDb(
  client: SqlClient,
  index: MatryoshkaIndex,
  options: WriteDbOptions = {},
): Promise<DbIndexInfo> {
  const table = checkTable(options.table ?? DEFAULT_TABLE);
  const d = index.dim;
  const m = options.prefixDim ?? Math.min(64, d);
  assertIntInRange('prefix dim of the HNSW index', m, 1, d);
  const type = options.halfvec === true ? 'halfvec' : 'vector';
  // pgvector's HNSW indexes at most 2,000 dims of vector and 4,000 of halfvec.
  assertIntInRange(`prefix dim of a ${type} HNSW index`, m, 1, type === 'vector' ? 2000 : 4000);
  const connectivity = options.connectivity ?? 16;
  const efConstruction = options.efConstruction ?? 64;
  assertIntInRange('HNSW connectivity', connectivity, 2, 100);
  assertIntInRange('HNSW efConstruction', efConstruction, 4, 1000);
  const info: DbIndexInfo = {
    format: 'mrl-pgvector-1',
    dim: d,
    prefixDim: m,
    metric: index.metric,
    type,
    rows: index.size,
  };
  const { opclass } = ops(index.metric, type);
  const workMem = options.maintenanceWorkMem;
  if (workMem !== undefined) checkWorkMem(workMem);

  await client.query('BEGIN');
  try {
    if (workMem !== undefined) await client.query(`SET LOCAL maintenance_work_mem = '${workMem}'`);
    const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
    if (exists.rows[0]?.present === true) {
      if (options.replace !== true) {
        throw new MrlError(
          'invalid-argument',
          `table ${table} already exists in the database.`,
          'Pass another table name, or replace it (--replace).',
        );
      }
      await client.query(`DROP TABLE ${table}`);
    }
    await client.query(
      `CREATE TABLE ${table} (id integer PRIMARY KEY, ext_id text, label integer, embedding ${type}(${d}) NOT NULL)`,
    );
    const batch = Math.max(1, Math.min(500, Math.floor(60000 / (d + 16))));
    for (let r0 = 0; r0 < index.size; r0 += batch) {
      const r1 = Math.min(index.size, r0 + batch);
      const values: string[] = [];
      const params: unknown[] = [];
      for (let i = r0; i < r1; i++) {
        const p = params.length;
        values.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4})`);
        params.push(i, index.ids?.[i] ?? null, index.labels?.[i] ?? null, vectorText(index.vectors, i * d, d));
      }
      await client.query(`INSERT INTO ${table} (id, ext_id, label, embedding) VALUES ${values.join(', ')}`, params);
    }
    await client.query(
      `CREATE INDEX ${table}_prefix_hnsw ON ${table} USING hnsw ((subvector(embedding, 1, ${m})::${type}(${m})) ${opclass}) WITH (m = ${connectivity}, ef_construction = ${efConstruction})`,
    );
    await client.query(`COMMENT ON TABLE ${table} IS '${JSON.stringify(info)}'`);
    await client.query('COMMIT');
    // Row count and value statistics, so the planner walks the HNSW index once that pays.
    await client.query(`ANALYZE ${table}`);
  } catch (e) {
    await client.query('ROLLBACK');
    throw e;
  }
  return info;
}

/**
 * Reads the description {@link writeIndexToDb} left on `table`.
 *
 * @example
 * ```ts
 * const { dim, prefixDim } = await readDbIndexInfo(db.client);
 * ```
 */
export async function readDbIndexInfo(client: SqlClient, table = DEFAULT_TABLE): Promise<DbIndexInfo> {
  checkTable(table);
  const r = await client.query(
    'SELECT to_regclass($1) IS NOT NULL AS present, obj_description(to_regclass($1), $2) AS info',
    [table, 'pg_class'],
  );
  const row = r.rows[0];
  if (row?.present !== true) {
    throw new MrlError(
      'missing-file',
      `the database has no table ${table}.`,
      'Write one with mrl-cli index --from <index.mrlidx> --to <database>, or pass its name with --table.',
    );
  }
  let info: DbIndexInfo | undefined;
  try {
    info = JSON.parse(String(row.info)) as DbIndexInfo;
  } catch {
    info = undefined;
  }
  if (info?.format !== 'mrl-pgvector-1') {
    throw new MrlError(
      'corrupt-file',
      `table ${table} was not written by mrl (its comment holds no mrl-pgvector-1 description).`,
      'Write it with mrl-cli index, or pass the right --table.',
    );
  }
  return info;
}

/**
 * The SQL of the two-stage search ($1: the query as vector text, $2: K, $3: k): the inner
 * query walks the HNSW index on the m-dim prefix for K rows, the outer one re-ranks those by the
 * full vector. Ties go to the lower id, as in MatryoshkaIndex.
 *
 * @example
 * ```ts
 * twoStageSql({ format: 'mrl-pgvector-1', dim: 256, prefixDim: 64, metric: 'cosine', type: 'vector', rows: 1 }, 'mrl_vectors');
 * ```
 */
export function twoStageSql(info: DbIndexInfo, table = DEFAULT_TABLE): string {
  const { operator } = ops(info.metric, info.type);
  const { dim: d, prefixDim: m, type } = info;
  const score =
    info.metric === 'cosine'
      ? `1 - (embedding ${operator} $1::${type}(${d}))`
      : `-(embedding ${operator} $1::${type}(${d}))`;
  return [
    `SELECT id, ${score} AS score FROM (`,
    `  SELECT id, embedding FROM ${checkTable(table)}`,
    `  ORDER BY subvector(embedding, 1, ${m})::${type}(${m}) ${operator} subvector($1::${type}(${d}), 1, ${m})::${type}(${m})`,
    '  LIMIT $2',
    ') AS shortlist',
    `ORDER BY embedding ${operator} $1::${type}(${d}), id`,
    'LIMIT $3',
  ].join('\n');
}

/** The exact full-vector search in SQL ($1: query, $2: k): a sequential scan, the reference. */
export function exactSql(info: DbIndexInfo, table = DEFAULT_TABLE): string {
  const { operator } = ops(info.metric, info.type);
  const { dim: d, type } = info;
  const score =
    info.metric === 'cosine'
      ? `1 - (embedding ${operator} $1::${type}(${d}))`
      : `-(embedding ${operator} $1::${type}(${d}))`;
  return `SELECT id, ${score} AS score FROM ${checkTable(table)} ORDER BY embedding ${operator} $1::${type}(${d}), id LIMIT $2`;
}

/**
 * Searches the table written by {@link writeIndexToDb} with `queries` ([nq, d], d the stored
 * dim): one two-stage SQL statement per query (or the exact scan with `exact: true`).
 *
 * @example
 * ```ts
 * const hits = await searchDb(db.client, queries, { k: 10, shortlistK: 200 });
 * recallAtK(hits, index.search(queries, { k: 10 }), 10);
 * ```
 */
export async function searchDb(
  client: SqlClient,
  queries: Float32Array,
  options: DbSearchOptions,
): Promise<DbSearchResult> {
  const table = options.table ?? DEFAULT_TABLE;
  const info = await readDbIndexInfo(client, table);
  const d = info.dim;
  if (!(queries instanceof Float32Array)) {
    throw new MrlError('invalid-argument', 'queries must be a Float32Array of [numQueries, d] values');
  }
  const nq = rowCount(`queries (the table ${table} holds d = ${d} vectors)`, queries, d);
  assertFiniteRows('queries', queries, d);
  assertIntInRange('k', options.k, 1);
  const k = Math.min(options.k, info.rows);
  const shortlistK = options.shortlistK ?? Math.max(100, 10 * k);
  assertIntInRange('shortlistK', shortlistK, k);
  const efSearch = Math.max(options.efSearch ?? 40, shortlistK);
  assertIntInRange('hnsw.ef_search', efSearch, 1, 1000);
  await client.query(`SET hnsw.ef_search = ${efSearch}`);
  const sql = options.exact === true ? exactSql(info, table) : twoStageSql(info, table);
  const ids = new Int32Array(nq * k).fill(-1);
  const scores = new Float32Array(nq * k).fill(Number.NEGATIVE_INFINITY);
  for (let q = 0; q < nq; q++) {
    const text = vectorText(queries, q * d, d);
    const r = await client.query(sql, options.exact === true ? [text, k] : [text, shortlistK, k]);
    r.rows.forEach((row, c) => {
      ids[q * k + c] = Number(row.id);
      scores[q * k + c] = Number(row.score);
    });
  }
  return { numQueries: nq, k, ids, scores };
}

import type { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { MrlError } from '@mrl/core/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recallAtK } from '../../src/metrics.js';
import {
  openVectorDb,
  readDbIndexInfo,
  searchDb,
  twoStageSql,
  writeIndexToDb,
  type VectorDb,
} from '../../src/node/pgvector.js';
import { MatryoshkaIndex } from '../../src/vector-index.js';
import { clustered, expectClose } from '../synthetic.js';

const d = 32;
const m = 8;
const data = clustered(1500, 20, d, 30, 17);
const ids = Array.from({ length: 1500 }, (_, i) => `doc-${i}`);
const cosine = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, labels: data.labels, ids });
const dot = MatryoshkaIndex.fromVectors(data.vectors, { dim: d, metric: 'dot' });
const k = 10;

// One embedded database for the file: starting PGlite (initdb in wasm) takes seconds.
let db: VectorDb;
beforeAll(async () => {
  db = await openVectorDb('pglite:memory');
  await writeIndexToDb(db.client, cosine, { prefixDim: m });
  await writeIndexToDb(db.client, dot, { prefixDim: m, table: 'dot_vectors' });
});
afterAll(async () => {
  await db?.close();
});

function expectSameHits(a: { ids: Int32Array; scores: Float32Array }, b: { ids: Int32Array; scores: Float32Array }) {
  expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
  expectClose(a.scores, b.scores, 1e-5);
}

describe('pgvector through PGlite', () => {
  it('stores ids, labels, the full vector and the description', async () => {
    expect(await readDbIndexInfo(db.client)).toEqual({
      format: 'mrl-pgvector-1',
      dim: d,
      prefixDim: m,
      metric: 'cosine',
      type: 'vector',
      rows: 1500,
    });
    const row = (await db.client.query('SELECT ext_id, label, embedding::text AS e FROM mrl_vectors WHERE id = 7'))
      .rows[0];
    expect(row?.ext_id).toBe('doc-7');
    expect(row?.label).toBe(data.labels[7]);
    // Float32 values go in as text and come back bit-exact.
    const back = Float32Array.from(JSON.parse(String(row?.e)) as number[]);
    expect(Array.from(back)).toEqual(Array.from(cosine.prefix(7)));
  });

  it.each([
    ['cosine', 'mrl_vectors', cosine],
    ['dot', 'dot_vectors', dot],
  ] as const)('exact SQL (%s) equals MatryoshkaIndex exact search', async (_, table, index) => {
    const sql = await searchDb(db.client, data.queries, { k, table, exact: true });
    expectSameHits(sql, index.search(data.queries, { k }));
  });

  it('the two-stage statement walks the prefix HNSW index and re-ranks at the full dim', async () => {
    // 1,500 rows are cheaper to sort than to walk: make the planner show that it can use the index.
    await db.client.query('SET enable_seqscan = off');
    try {
      const info = await readDbIndexInfo(db.client);
      const query = `'[${Array.from(data.queries.subarray(0, d)).join(',')}]'`;
      const sql = twoStageSql(info).replace(/\$1/g, query).replace('$2', '100').replace('$3', '10');
      const plan = await db.client.query(`EXPLAIN ${sql}`);
      const text = plan.rows.map((r) => String(r['QUERY PLAN'])).join('\n');
      expect(text).toMatch(/Index Scan using mrl_vectors_prefix_hnsw on mrl_vectors/);
      expect(text).not.toMatch(/Seq Scan/);
      const twoStage = await searchDb(db.client, data.queries, { k, shortlistK: 100, efSearch: 200 });
      const recall = recallAtK(twoStage, cosine.search(data.queries, { k }), k);
      expect(recall).toBeGreaterThanOrEqual(0.97);
      // The graph is approximate: a shortlist of k straight from it loses some of the exact top k.
      const narrow = await searchDb(db.client, data.queries, { k, shortlistK: k, efSearch: k });
      expect(recallAtK(narrow, cosine.search(data.queries, { k }), k)).toBeLessThan(recall);
    } finally {
      await db.client.query('RESET enable_seqscan');
    }
  });

  it('with the prefix stage exact (index scans off), two-stage SQL equals MatryoshkaIndex.shortlistRerank', async () => {
    await db.client.query('SET enable_indexscan = off');
    try {
      for (const [table, index] of [
        ['mrl_vectors', cosine],
        ['dot_vectors', dot],
      ] as const) {
        const sql = await searchDb(db.client, data.queries, { k, table, shortlistK: 40 });
        const ours = index.shortlistRerank(data.queries, { shortlistDim: m, shortlistK: 40, rerankDim: d, k });
        expectSameHits(sql, ours);
      }
    } finally {
      await db.client.query('RESET enable_indexscan');
    }
  });

  it('the same SQL over the PostgreSQL wire protocol (pg against the PGlite socket server) gives the same hits', async () => {
    const server = new PGLiteSocketServer({ db: db.client as unknown as PGlite, host: '127.0.0.1', port: 0 });
    await server.start();
    const conn = server.getServerConn();
    const remote = await openVectorDb(`postgres://postgres@${conn}/postgres`);
    try {
      expect(remote.kind).toBe('postgres');
      const over = await searchDb(remote.client, data.queries, { k, shortlistK: 100, efSearch: 200 });
      const local = await searchDb(db.client, data.queries, { k, shortlistK: 100, efSearch: 200 });
      expectSameHits(over, local);
    } finally {
      await remote.close();
      await server.stop();
    }
  });
});

describe('pgvector: bad input', () => {
  it('refuses to overwrite a table, and a failed write leaves nothing behind', async () => {
    await expect(writeIndexToDb(db.client, cosine, { prefixDim: m })).rejects.toThrow(
      /table mrl_vectors already exists in the database/,
    );
    expect((await readDbIndexInfo(db.client)).rows).toBe(1500);
    // pgvector refuses ef_construction < 2 m only when it builds the index, after every insert.
    await expect(
      writeIndexToDb(db.client, cosine, { table: 'half_written', connectivity: 16, efConstruction: 8 }),
    ).rejects.toThrow(/ef_construction/);
    const left = await db.client.query("SELECT to_regclass('half_written') IS NULL AS gone");
    expect(left.rows[0]?.gone).toBe(true);
  });

  it('builds with the maintenance_work_mem it is given for that transaction only, and refuses a size it cannot splice', async () => {
    const before = (await db.client.query('SHOW maintenance_work_mem')).rows[0]?.maintenance_work_mem;
    // 2,000 rows' graph outgrows 1MB (1,500 fit), so pgvector says so and finishes the build on disk.
    const more = clustered(2000, 20, d, 30, 5);
    const big = MatryoshkaIndex.fromVectors(more.vectors, { dim: d });
    const notices: string[] = [];
    const pglite = db.client as unknown as PGlite;
    const listening = {
      query: (sql: string, params?: unknown[]) =>
        pglite.query<Record<string, unknown>>(sql, params, { onNotice: (n) => notices.push(n.message ?? '') }),
    };
    await writeIndexToDb(listening, big, { prefixDim: m, table: 'small_mem', maintenanceWorkMem: '1MB' });
    expect(notices.some((n) => /hnsw graph no longer fits into maintenance_work_mem/.test(n))).toBe(true);
    expect((await db.client.query('SHOW maintenance_work_mem')).rows[0]?.maintenance_work_mem).toBe(before);
    const onDisk = await searchDb(db.client, more.queries, { k, table: 'small_mem', shortlistK: 100, efSearch: 200 });
    expect(recallAtK(onDisk, big.search(more.queries, { k }), k)).toBeGreaterThanOrEqual(0.97);
    // With room for the graph, the same build stays in memory.
    notices.length = 0;
    await writeIndexToDb(listening, big, { prefixDim: m, table: 'big_mem', maintenanceWorkMem: '64MB' });
    expect(notices.filter((n) => /maintenance_work_mem/.test(n))).toEqual([]);
    for (const bad of ['1 GB', '1GB; DROP TABLE mrl_vectors', '0MB', '2TB', '']) {
      const e = await writeIndexToDb(db.client, cosine, { table: 'not_made', maintenanceWorkMem: bad }).catch(
        (x: unknown) => x,
      );
      expect(MrlError.is(e)).toBe(true);
      expect((e as MrlError).message).toBe(`maintenance_work_mem '${bad}' is not a size this accepts.`);
    }
    const left = await db.client.query("SELECT to_regclass('not_made') IS NULL AS gone");
    expect(left.rows[0]?.gone).toBe(true);
    expect((await readDbIndexInfo(db.client)).rows).toBe(1500);
  });

  it('names a NaN query row, a dim mismatch and a missing table', async () => {
    const q = data.queries.slice(0, 2 * d);
    q[d + 3] = Number.POSITIVE_INFINITY;
    await expect(searchDb(db.client, q, { k })).rejects.toThrow(/^queries row 1 holds Infinity at position 3/);
    await expect(searchDb(db.client, new Float32Array(d + 1), { k })).rejects.toThrow(
      /queries \(the table mrl_vectors holds d = 32 vectors\) has 33 values/,
    );
    const missing = await searchDb(db.client, data.queries, { k, table: 'nothing_here' }).catch((e: unknown) => e);
    expect(MrlError.is(missing)).toBe(true);
    expect((missing as MrlError).message).toBe('the database has no table nothing_here.');
  });

  it('refuses a URL that is not a database, and names an unreachable server', async () => {
    await expect(openVectorDb('mysql://x')).rejects.toThrow(/^'mysql:\/\/x' is not a database URL\.$/);
    await expect(openVectorDb('pglite:')).rejects.toThrow(/names no directory/);
    const e = await openVectorDb('postgres://me:secret@127.0.0.1:1/db').catch((x: unknown) => x);
    expect(MrlError.is(e)).toBe(true);
    expect((e as MrlError).message).toMatch(
      /^cannot use the PostgreSQL database postgres:\/\/me:\*\*\*@127\.0\.0\.1:1\/db: /,
    );
    expect((e as MrlError).message).not.toContain('secret');
  });
});

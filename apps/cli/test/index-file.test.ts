import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MatryoshkaIndex } from '@mrl/adaptive';
import { ChunkedIndex, saveIndex } from '@mrl/adaptive/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../src/npy.js';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

// mrl-cli index --to <file>.mrlidx --first-stage, and mrl-cli search on such a file (no training).
const n = 2000;
const d = 32;
const nq = 12;
let dir: string;
let index: MatryoshkaIndex;
let queries: Float32Array;

beforeAll(async () => {
  dir = await tempDir('index-file');
  let s = 11;
  const random = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  const make = (rows: number) => Float32Array.from({ length: rows * d }, (_, i) => random() / (1 + (i % d) / 4));
  index = MatryoshkaIndex.fromVectors(make(n), { dim: d });
  queries = make(nq);
  saveIndex(index, join(dir, 'train.mrlidx'));
  await writeFile(join(dir, 'queries.npy'), encodeNpy(queries, [nq, d]));
});

describe('mrl-cli index --to <file>.mrlidx --first-stage', () => {
  it('writes a file with a stored int8 first stage; search adds the two-stage row that reads rows from it', async () => {
    const file = join(dir, 'train-int8.mrlidx');
    const wrote = expectOk(
      await cli(['index', '--from', join(dir, 'train.mrlidx'), '--to', file, '--first-stage', 'int8:8']),
    );
    expect(wrote.stdout).toContain(`wrote 2000 vectors (d=32) to ${file} with a stored int8(8) first stage`);
    const db = ChunkedIndex.open(file, { verify: true });
    expect(db.firstStageSpec).toEqual({ kind: 'int8', dim: 8, scale: 'per-dim' });
    const want = db.search(queries, { k: 10, shortlistK: 300 });
    db.close();
    const r = expectOk(
      await cli([
        'search',
        '--index',
        file,
        '--queries',
        join(dir, 'queries.npy'),
        '--shortlist-k',
        '300',
        '--format',
        'json',
      ]),
    );
    const out = JSON.parse(r.stdout) as {
      methods: { method: string; stages: string; recall: number }[];
      hitsOf: string;
      shown: { hits: { row: number }[] }[];
    };
    const stored = out.methods.find((m) => m.method === 'stored');
    expect(stored?.stages).toBe('int8(8) (300) -> 32, rows read from the file');
    expect(out.hitsOf).toBe('stored');
    expect(out.shown[0]?.hits.map((h) => h.row)).toEqual(Array.from(want.ids.subarray(0, 10)));
    // Its recall is against exact search, computed by the CLI; recompute it here.
    const exact = index.search(queries, { k: 10 });
    let found = 0;
    for (let q = 0; q < nq; q++) {
      const truth = new Set(exact.ids.subarray(q * 10, q * 10 + 10));
      for (const id of want.ids.subarray(q * 10, q * 10 + 10)) if (truth.has(id)) found++;
    }
    expect(stored?.recall).toBeCloseTo(found / (nq * 10), 10);
  });

  it('refuses a bad --first-stage, and --first-stage with a database, writing nothing', async () => {
    const bad = join(dir, 'bad.mrlidx');
    expect(
      expectOneParagraphError(
        await cli(['index', '--from', join(dir, 'train.mrlidx'), '--to', bad, '--first-stage', 'int8:64']),
      ),
    ).toBe(
      "error: --first-stage 'int8:64' must be int8:<m> or binary:<m> with m from 1 to the index's d = 32. e.g. --first-stage int8:32",
    );
    expect(existsSync(bad)).toBe(false);
    expect(
      expectOneParagraphError(
        await cli([
          'index',
          '--from',
          join(dir, 'train.mrlidx'),
          '--to',
          'pglite:memory',
          '--first-stage',
          'binary:32',
        ]),
      ),
    ).toMatch(/^error: --first-stage is for index files, but --to pglite:memory is a database\./);
  });

  it('refuses a bad --maintenance-work-mem before the database directory exists, and with an index file', async () => {
    const target = join(dir, 'never.pg');
    expect(
      expectOneParagraphError(
        await cli([
          'index',
          '--from',
          join(dir, 'train.mrlidx'),
          '--to',
          `pglite:${target}`,
          '--maintenance-work-mem',
          '1 GB',
        ]),
      ),
    ).toBe(
      "error: maintenance_work_mem '1 GB' is not a size this accepts. Give a whole number followed by kB, MB or GB, e.g. --maintenance-work-mem 1GB.",
    );
    expect(existsSync(target)).toBe(false);
    const file = join(dir, 'never.mrlidx');
    expect(
      expectOneParagraphError(
        await cli(['index', '--from', join(dir, 'train.mrlidx'), '--to', file, '--maintenance-work-mem', '1GB']),
      ),
    ).toMatch(/^error: --maintenance-work-mem is for databases, but --to .*never\.mrlidx is an index file\./);
    expect(existsSync(file)).toBe(false);
  });
});

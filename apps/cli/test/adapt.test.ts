import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyAdaptor, loadAdaptor, truncateAndNormalize } from '@mrl/core';
import { parseJsonl } from '../src/commands/adapt.js';
import { decodeNpy, encodeNpy } from '../src/npy.js';
import { cli, expectOk, expectOneParagraphError, TINY, tempDir } from './helpers.js';

// Small synthetic embeddings: classes and query/document pairs in a random 4-dim subspace spread
// over 32 coordinates, so that no coordinate prefix holds the signal.
const D = 32;
const R = 4;
let state = 12345;
const uniform = (): number => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state + 0.5) / 4294967296;
};
const gaussian = (): number => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
// Entries of variance 1/D: rows of roughly unit norm, so each coordinate carries little signal.
const basis = Array.from({ length: R }, () => Array.from({ length: D }, () => gaussian() / Math.sqrt(D)));
const embed = (latent: number[], noise: number): number[] =>
  Array.from({ length: D }, (_, j) => latent.reduce((s, x, k) => s + x * basis[k]![j]!, 0) + noise * gaussian());

let dir: string;
beforeAll(async () => {
  dir = await tempDir('adapt');
  const centres = Array.from({ length: 6 }, () => Array.from({ length: R }, () => 2 * gaussian()));
  const corpus: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 800; i++) {
    const c = i % 6;
    labels.push(c);
    corpus.push(
      ...embed(
        centres[c]!.map((x) => x + 0.6 * gaussian()),
        0.2,
      ),
    );
  }
  await writeFile(join(dir, 'corpus.npy'), encodeNpy(Float32Array.from(corpus), [800, D]));
  await writeFile(join(dir, 'corpus.labels.npy'), encodeNpy(Int32Array.from(labels), [800]));
  const queries: number[] = [];
  const docs: number[] = [];
  for (let i = 0; i < 400; i++) {
    const latent = Array.from({ length: R }, gaussian);
    docs.push(...embed(latent, 0.2));
    queries.push(
      ...embed(
        latent.map((x) => x + 0.2 * gaussian()),
        0.2,
      ),
    );
  }
  await writeFile(join(dir, 'queries.npy'), encodeNpy(Float32Array.from(queries), [400, D]));
  await writeFile(join(dir, 'docs.npy'), encodeNpy(Float32Array.from(docs), [400, D]));
  // A hard negative per query: another document, moved halfway towards the query's own.
  const negatives = docs.map((x, i) => 0.5 * x + 0.5 * docs[(i + 7 * D) % docs.length]!);
  await writeFile(join(dir, 'negatives.npy'), encodeNpy(Float32Array.from(negatives), [400, D]));
  const bad = Float32Array.from(corpus.slice(0, 10 * D));
  bad[3 * D + 5] = Number.NaN;
  await writeFile(join(dir, 'bad.npy'), encodeNpy(bad, [10, D]));
});

describe('mrl-cli adapt', () => {
  it('trains on labelled embeddings and pairs, prints both per-dim tables and writes the adaptor', async () => {
    const out = join(dir, 'adaptor');
    const r = expectOk(
      await cli([
        'adapt',
        '--embeddings',
        join(dir, 'corpus.npy'),
        '--pairs',
        `${join(dir, 'queries.npy')},${join(dir, 'docs.npy')}`,
        '--dims',
        '4,8,32',
        '--epochs',
        '15',
        '--batch-size',
        '100',
        '--lr',
        '0.003',
        '--out',
        out,
      ]),
    );
    expect(r.stdout).toMatch(/^adaptor: d=32, hidden 64, rotation none, dims 4,8,32, \d+ steps/);
    expect(r.stdout).toContain('1-NN of 80 held-out rows against 720 training rows (labels)');
    expect(r.stdout).toMatch(/dim\s+truncation 1-NN %\s+pca 1-NN %\s+adaptor 1-NN %/);
    expect(r.stdout).toContain('retrieval of the documents of 40 held-out queries among those 40 documents');
    expect(r.stdout).toMatch(/dim\s+truncation R@10 %\s+truncation nDCG@10 %\s+pca R@10 %/);
    const config = JSON.parse(await readFile(join(out, 'adaptor.json'), 'utf8'));
    expect(config).toMatchObject({ format: 'mrl-matryoshka-adaptor', dim: 32, hidden: 64, dims: [4, 8, 32] });
    expect(config.training.trainRows).toBe(720);
    const tables = JSON.parse(await readFile(join(out, 'table.json'), 'utf8'));
    expect(tables.map((t: { task: string }) => t.task)).toEqual(['classification', 'retrieval']);
    const [classification, retrieval] = tables as {
      rows: {
        dim: number;
        truncation: { nnTop1: number; ndcg10: number };
        adaptor: { nnTop1: number; ndcg10: number };
      }[];
    }[];
    expect(classification!.rows.map((x) => x.dim)).toEqual([4, 8, 32]);
    // The 4-dim prefix of a random rotation of the subspace misses most of it; the adaptor's does not.
    expect(classification!.rows[0]!.adaptor.nnTop1).toBeGreaterThan(classification!.rows[0]!.truncation.nnTop1 + 0.1);
    expect(retrieval!.rows[0]!.adaptor.ndcg10).toBeGreaterThan(retrieval!.rows[0]!.truncation.ndcg10);
    expect((await readFile(join(out, 'adaptor.onnx'))).length).toBeGreaterThan(4 * (32 * 64 * 2));
    const weights = await readFile(join(out, 'adaptor.safetensors'));
    const header = JSON.parse(weights.subarray(8, 8 + Number(weights.readBigUInt64LE(0))).toString('utf8'));
    expect(header.w1.shape).toEqual([32, 64]);
    expect(header.w2.shape).toEqual([64, 32]);
  });

  it('with a third --pairs file, trains the ranking loss with hard negatives and records the files', async () => {
    const out = join(dir, 'adaptor-negatives');
    const files = ['queries.npy', 'docs.npy', 'negatives.npy'].map((f) => join(dir, f));
    const r = expectOk(
      await cli([
        'adapt',
        '--embeddings',
        join(dir, 'queries.npy'),
        '--pairs',
        files.join(','),
        '--dims',
        '4,8,32',
        '--epochs',
        '15',
        '--batch-size',
        '100',
        '--lr',
        '0.003',
        '--out',
        out,
      ]),
    );
    expect(r.stdout).toContain('retrieval of the documents of 40 held-out queries among those 40 documents');
    const config = JSON.parse(await readFile(join(out, 'adaptor.json'), 'utf8'));
    expect(config.training.pairs).toEqual(files);
    const tables = JSON.parse(await readFile(join(out, 'table.json'), 'utf8'));
    const rows = tables[0].rows as { dim: number; truncation: { ndcg10: number }; adaptor: { ndcg10: number } }[];
    expect(rows[0]!.adaptor.ndcg10).toBeGreaterThan(rows[0]!.truncation.ndcg10);
  });

  it('with --distill-weight, adds the self-distillation term to the ranking loss and records its weight', async () => {
    const out = join(dir, 'adaptor-distill');
    const pairs = `${join(dir, 'queries.npy')},${join(dir, 'docs.npy')}`;
    const args = ['adapt', '--embeddings', join(dir, 'queries.npy'), '--pairs', pairs, '--epochs', '10'];
    const r = expectOk(
      await cli([
        ...args,
        '--dims',
        '4,32',
        '--batch-size',
        '100',
        '--lr',
        '0.003',
        '--distill-weight',
        '2',
        '--out',
        out,
      ]),
    );
    expect(r.stdout).toContain('retrieval of the documents of 40 held-out queries among those 40 documents');
    const config = JSON.parse(await readFile(join(out, 'adaptor.json'), 'utf8'));
    expect(config.training.lossWeights).toMatchObject({ ranking: 1, distill: 2 });
    const tables = JSON.parse(await readFile(join(out, 'table.json'), 'utf8'));
    const rows = tables[0].rows as { dim: number; truncation: { ndcg10: number }; adaptor: { ndcg10: number } }[];
    expect(rows[0]!.dim).toBe(4);
    expect(rows[0]!.adaptor.ndcg10).toBeGreaterThan(rows[0]!.truncation.ndcg10);
    // One nesting dim has no teacher: refused before anything is written.
    const single = join(dir, 'adaptor-distill-single');
    expect(
      expectOneParagraphError(await cli([...args, '--dims', '32', '--distill-weight', '1', '--out', single])),
    ).toContain('the distillation term needs a nesting dim below the largest (its teacher), but the dims are [32].');
    expect(existsSync(single)).toBe(false);
  });

  it('with --label-pairs, trains the ranking loss on same-class training rows', async () => {
    const out = join(dir, 'adaptor-labels');
    const args = ['adapt', '--embeddings', join(dir, 'corpus.npy'), '--dims', '4,8,32', '--epochs', '15'];
    const r = expectOk(await cli([...args, '--batch-size', '100', '--lr', '0.003', '--label-pairs', '--out', out]));
    expect(r.stdout).toContain('1-NN of 80 held-out rows against 720 training rows (labels)');
    const config = JSON.parse(await readFile(join(out, 'adaptor.json'), 'utf8'));
    expect(config.training).toMatchObject({ labelPairs: true, trainRows: 720 });
    const [classification] = JSON.parse(await readFile(join(out, 'table.json'), 'utf8')) as {
      rows: { dim: number; truncation: { nnTop1: number }; adaptor: { nnTop1: number } }[];
    }[];
    expect(classification!.rows[0]!.adaptor.nnTop1).toBeGreaterThan(classification!.rows[0]!.truncation.nnTop1 + 0.1);
    expect(
      expectOneParagraphError(
        await cli([
          'adapt',
          '--embeddings',
          join(dir, 'corpus.npy'),
          '--pairs',
          `${join(dir, 'queries.npy')},${join(dir, 'docs.npy')}`,
          '--label-pairs',
          '--out',
          join(dir, 'x'),
        ]),
      ),
    ).toBe(
      'error: --label-pairs and --pairs both supervise the ranking loss; give one. Use --pairs queries.npy,docs.npy for (query, document) pairs, or --label-pairs to draw same-class pairs from labelled embeddings.',
    );
    expect(
      expectOneParagraphError(
        await cli(['adapt', '--embeddings', join(dir, 'queries.npy'), '--label-pairs', '--out', join(dir, 'x')]),
      ),
    ).toContain(`error: --label-pairs needs labels, but ${join(dir, 'queries.npy')} has none.`);
  });

  it('with --center, stores the training mean and applies it in adaptor.onnx as applyAdaptor does', async () => {
    const out = join(dir, 'adaptor-center');
    const args = ['adapt', '--embeddings', join(dir, 'corpus.npy'), '--dims', '4,8,32', '--epochs', '2'];
    const r = expectOk(await cli([...args, '--batch-size', '100', '--rotation', 'pca', '--center', '--out', out]));
    expect(r.stdout).toMatch(/^adaptor: d=32, hidden 64, rotation pca, centred, dims 4,8,32, \d+ steps/);
    const config = JSON.parse(await readFile(join(out, 'adaptor.json'), 'utf8'));
    expect(config).toMatchObject({ center: true, rotation: 'pca', dim: 32 });
    const weights = await loadAdaptor(out);
    const corpus = decodeNpy(await readFile(join(dir, 'corpus.npy')), 'corpus.npy');
    const data = corpus.data as Float32Array;
    // The mean of the 720 training rows: near the mean of all 800, far from zero.
    const all = new Float64Array(D);
    for (let i = 0; i < data.length; i++) all[i % D]! += data[i]! / 800;
    const gap = Math.max(...Array.from(all, (v, j) => Math.abs(v - weights.mean![j]!)));
    expect(gap).toBeLessThan(0.05);
    expect(Math.max(...Array.from(all, Math.abs))).toBeGreaterThan(0.2);
    const rows = { data: data.subarray(0, 20 * D), rows: 20, dim: D };
    const session = await ort.InferenceSession.create(join(out, 'adaptor.onnx'));
    const result = await session.run({ embeddings: new ort.Tensor('float32', rows.data, [20, D]) });
    const expected = applyAdaptor(weights, rows).data;
    const worst = Math.max(...Array.from(expected, (v, i) => Math.abs(v - (result.adapted!.data as Float32Array)[i]!)));
    expect(worst).toBeLessThan(1e-4);
    await session.release();
  });

  it('refuses NaN with the row named, in one paragraph', async () => {
    const line = expectOneParagraphError(
      await cli(['adapt', '--embeddings', join(dir, 'bad.npy'), '--out', join(dir, 'never')]),
    );
    expect(line).toBe(
      `error: ${join(dir, 'bad.npy')} row 3 column 5 is NaN; embeddings must be finite. Remove or re-embed that row; NaN/Inf usually come from a diverged model or a corrupt file.`,
    );
  });

  it('explains missing flags and bad --pairs', async () => {
    expect(expectOneParagraphError(await cli(['adapt', '--out', join(dir, 'x')]))).toContain(
      'error: mrl-cli adapt needs --embeddings.',
    );
    expect(
      expectOneParagraphError(
        await cli([
          'adapt',
          '--embeddings',
          join(dir, 'corpus.npy'),
          '--pairs',
          join(dir, 'queries.npy'),
          '--out',
          join(dir, 'x'),
        ]),
      ),
    ).toBe(
      'error: --pairs needs two files (queries, documents) or three (queries, documents, hard negatives), got 1. e.g. --pairs queries.npy,docs.npy or --pairs queries.npy,docs.npy,negatives.npy',
    );
    expect(
      expectOneParagraphError(
        await cli([
          'adapt',
          '--embeddings',
          join(dir, 'corpus.npy'),
          '--pairs',
          `${join(dir, 'queries.npy')},${join(dir, 'docs.npy')},${join(dir, 'corpus.npy')}`,
          '--out',
          join(dir, 'x'),
        ]),
      ),
    ).toBe(
      `error: --pairs: ${join(dir, 'corpus.npy')} has 800 rows but ${join(dir, 'queries.npy')} has 400. Row i of the hard negatives must be a wrong answer close to query i: give one per query.`,
    );
    expect(
      expectOneParagraphError(
        await cli(['adapt', '--embeddings', join(dir, 'corpus.labels.npy'), '--out', join(dir, 'x')]),
      ),
    ).toContain('must hold a 2-D float32 array of embeddings, got int32 shape (800).');
    expect(
      expectOneParagraphError(
        await cli(['adapt', '--embeddings', join(dir, 'corpus.npy'), '--holdout', '1', '--out', join(dir, 'x')]),
      ),
    ).toContain('--holdout must be between 0 and 1 (exclusive), got 1.');
    expect(
      expectOneParagraphError(
        await cli([
          'adapt',
          '--embeddings',
          join(dir, 'corpus.npy'),
          '--dims',
          '4,8,32',
          '--weights',
          '1,2',
          '--out',
          join(dir, 'x'),
        ]),
      ),
    ).toBe('error: weights has 2 entries but there are 3 nesting dims (4, 8, 32). Give one weight per nesting dim.');
  });
});

describe('mrl-cli embed --adaptor', () => {
  it('applies the adaptor to the full embeddings before truncating and renormalising', async () => {
    const run = join(dir, 'run');
    expectOk(await cli(['fit', ...TINY, '--run-dir', run]));
    const plain = join(dir, 'plain');
    expectOk(await cli(['embed', '--run-dir', run, '--limit', '300', '--formats', 'npy', '--out', plain]));
    const adaptorDir = join(dir, 'tiny-adaptor');
    expectOk(
      await cli(['adapt', '--embeddings', `${plain}.npy`, '--dims', '4,16', '--epochs', '2', '--out', adaptorDir]),
    );
    const adapted = join(dir, 'adapted');
    const r = expectOk(
      await cli([
        'embed',
        '--run-dir',
        run,
        '--limit',
        '300',
        '--dim',
        '4',
        '--formats',
        'npy',
        '--adaptor',
        adaptorDir,
        '--out',
        adapted,
      ]),
    );
    expect(r.stdout).toContain('d=16 -> 4 dims');
    // The same by hand: the full (unit-norm) embeddings through the adaptor, first 4 dims, renormalised.
    const full = decodeNpy(await readFile(`${plain}.npy`), 'plain').data as Float32Array;
    const weights = await loadAdaptor(adaptorDir);
    const mapped = applyAdaptor(weights, { data: full, rows: 300, dim: 16 }).data;
    const expected = truncateAndNormalize(mapped, 300, 16, 4);
    const got = decodeNpy(await readFile(`${adapted}.npy`), 'adapted');
    expect(got.shape).toEqual([300, 4]);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - expected[i]!));
    expect(worst).toBeLessThan(1e-5);
    // And it is not the plain truncation: the adaptor changed the vectors.
    const truncated = truncateAndNormalize(full, 300, 16, 4);
    let moved = 0;
    for (let i = 0; i < truncated.length; i++) moved = Math.max(moved, Math.abs(got.data[i]! - truncated[i]!));
    expect(moved).toBeGreaterThan(1e-3);
  });
});

describe('.jsonl embeddings', () => {
  it('reads arrays or {embedding, label} objects, one per line', () => {
    const { rows, labels } = parseJsonl(
      '{"embedding": [1, 2], "label": 3}\n{"embedding": [4, 5.5], "label": 0}\n\n',
      'a.jsonl',
    );
    expect(rows).toEqual({ data: Float32Array.from([1, 2, 4, 5.5]), rows: 2, dim: 2 });
    expect(Array.from(labels!)).toEqual([3, 0]);
    expect(parseJsonl('[1, 2, 3]\n[4, 5, 6]', 'b.jsonl').labels).toBeUndefined();
  });

  it('names the line of a bad row', () => {
    expect(() => parseJsonl('[1, 2]\n[1, null]', 'c.jsonl')).toThrow(
      'c.jsonl line 2: expected an array of finite numbers or {"embedding": [...]}, got [1, null].',
    );
    expect(() => parseJsonl('[1, 2]\n[1, 2, 3]', 'c.jsonl')).toThrow(
      'c.jsonl line 2 has 3 values, the first line has 2.',
    );
    expect(() => parseJsonl('{"embedding": [1], "label": 1}\n[2]', 'c.jsonl')).toThrow(
      'c.jsonl line 2: give a label on every line or on none.',
    );
    expect(() => parseJsonl('[1]\n{"embedding": [2], "label": 1}', 'c.jsonl')).toThrow(
      'c.jsonl line 2: give a label on every line or on none.',
    );
  });
});

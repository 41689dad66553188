import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, TINY, tempDir } from './helpers.js';

// One tiny run with the FF baseline, then eval, embed, search and report on its folder.
let dir: string;
let run: string;
let fitStdout: string;
beforeAll(async () => {
  dir = await tempDir('pipeline');
  run = join(dir, 'run');
  const r = await cli(['fit', ...TINY, '--compare', 'ff', '--run-dir', run]);
  if (r.code !== 0) throw new Error(`fit failed:\n${r.stderr}`);
  fitStdout = r.stdout;
});

const python = (script: string): string => {
  const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
};

describe('mrl-cli eval', () => {
  it('prints the per-dim table with the baseline and draws the chart as SVG and PNG', async () => {
    const r = await cli(['eval', '--run-dir', run]);
    expectOk(r);
    expect(r.stdout).toMatch(
      /^fashion-mnist, mlp, d=16, MRL vs FF: [^\n]*\ndim\s+MRL top-1 %\s+MRL 1-NN %\s+MRL mAP@10\s+FF top-1 %\s+FF 1-NN %\s+FF mAP@10\n/,
    );
    expect(r.stdout).toMatch(/^\s+16(\s+\d+\.\d\d){2}\s+0\.\d{4}(\s+\d+\.\d\d){2}\s+0\.\d{4}$/m);
    // One table format: eval prints exactly the table fit printed (heading, columns, baseline line).
    expect(fitStdout).toContain(r.stdout.trim());
    expect(r.stdout).toMatch(/^baseline \(majority class\): top-1 % \d+\.\d\d$/m);
    const svgMeta = await sharp(join(run, 'accuracy-vs-dim.svg')).metadata();
    expect([svgMeta.format, svgMeta.width, svgMeta.height]).toEqual(['svg', 720, 440]);
    const pngMeta = await sharp(join(run, 'accuracy-vs-dim.png')).metadata();
    expect([pngMeta.format, pngMeta.width, pngMeta.height]).toEqual(['png', 720, 440]);
    const svg = await readFile(join(run, 'accuracy-vs-dim.svg'), 'utf8');
    expect(svg).toContain('>MRL</text>');
    expect(svg).toContain('>FF</text>');
    // Not a blank image: the lines are drawn in colour.
    const { channels, data } = await sharp(join(run, 'accuracy-vs-dim.png'))
      .raw()
      .toBuffer({ resolveWithObject: true })
      .then((x) => ({ channels: x.info.channels, data: x.data }));
    let red = 0;
    for (let i = 0; i < data.length; i += channels) if (data[i]! > 180 && data[i + 1]! < 80 && data[i + 2]! < 80) red++;
    expect(red).toBeGreaterThan(50);
  });

  it('writes JSON and CSV', async () => {
    const json = await cli(['eval', '--run-dir', run, '--format', 'json', '--chart', 'none']);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.rows.map((r: { dim: number }) => r.dim)).toEqual([8, 16]);
    expect(parsed.rows[1].mrl.top1).toBeGreaterThan(0.1);
    expect(parsed.rows[1].ff.top1).toBeGreaterThan(0.1);
    expect(parsed.table.series.map((s: { key: string }) => s.key)).toEqual(['mrl', 'ff']);
    const csv = await cli([
      'eval',
      '--run-dir',
      run,
      '--format',
      'csv',
      '--chart',
      join(dir, 'nn'),
      '--metric',
      'nnTop1',
    ]);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('dim,mrl_top1,mrl_nnTop1,mrl_map10,ff_top1,ff_nnTop1,ff_map10');
    expect(lines.slice(1).map((l) => l.split(',').length)).toEqual([7, 7]);
    expect(existsSync(join(dir, 'nn.png'))).toBe(true);
  });
});

describe('mrl-cli embed', () => {
  it('writes truncated, renormalised embeddings that numpy reads (.npy and safetensors)', async () => {
    const out = join(dir, 'emb', 'test8');
    const r = await cli(['embed', '--run-dir', run, '--split', 'test', '--limit', '300', '--dim', '8', '--out', out]);
    expectOk(r);
    expect(r.stdout).toContain('embedded 300 test examples, d=16 -> 8 dims (L2-normalised)');
    const npy = python(`
import numpy as np
a = np.load('${out}.npy'); l = np.load('${out}.labels.npy')
raw = open('${out}.npy', 'rb').read(); hl = int.from_bytes(raw[8:10], 'little')
print(a.dtype, a.shape, l.dtype, l.shape, raw[6], raw[7], (10 + hl) % 64, round(float(np.abs(np.linalg.norm(a, axis=1) - 1).max()), 5))`);
    expect(npy).toBe('float32 (300, 8) int32 (300,) 1 0 0 0.0');
    const st = python(`
import json, struct, numpy as np
raw = open('${out}.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n]); body = raw[8 + n:]
e = h['embeddings']; b, t = e['data_offsets']
x = np.frombuffer(body[b:t], dtype='<f4').reshape(e['shape'])
lb, lt = h['labels']['data_offsets']; lab = np.frombuffer(body[lb:lt], dtype='<i4')
ref = np.load('${out}.npy'); lref = np.load('${out}.labels.npy')
print(e['dtype'], e['shape'], h['labels']['dtype'], h['__metadata__']['dim'], bool(np.array_equal(x, ref)), bool(np.array_equal(lab, lref)))`);
    expect(st).toBe('F32 [300, 8] I32 8 True True');
  });

  it('the 8-dim embedding is the renormalised prefix of the 16-dim one', async () => {
    const full = join(dir, 'emb', 'test16');
    expectOk(
      await cli(['embed', '--run-dir', run, '--split', 'test', '--limit', '300', '--out', full, '--formats', 'npy']),
    );
    const check = python(`
import numpy as np
f = np.load('${full}.npy'); p = np.load('${join(dir, 'emb', 'test8')}.npy')
q = f[:, :8] / np.linalg.norm(f[:, :8], axis=1, keepdims=True)
print(f.shape, bool(np.allclose(p, q, atol=1e-5)))`);
    expect(check).toBe('(300, 16) True');
  });
});

describe('mrl-cli search', () => {
  it('searches an index from embed: exact, shortlist/re-rank and funnel with recall and FLOPs', async () => {
    const train = join(dir, 'emb', 'train');
    expectOk(await cli(['embed', '--run-dir', run, '--split', 'train', '--limit', '2000', '--out', train]));
    expect(existsSync(`${train}.mrlidx`)).toBe(true);
    const r = await cli([
      'search',
      '--index',
      `${train}.mrlidx`,
      '--queries',
      join(dir, 'emb', 'test16.npy'),
      '--k',
      '10',
      '--shortlist',
      '8:100',
      '--funnel',
      '8,16:50',
    ]);
    expectOk(r);
    expect(r.stdout).toContain('index train.mrlidx: 2000 vectors, d=16; 300 queries, k=10');
    expect(r.stdout).toMatch(/^\s+exact\s+16\s+\d+\s+1\.000x\s+1\.0000\s+0\.\d{4}/m);
    expect(r.stdout).toMatch(/^\s*shortlist\s+8\(100\) -> 16\s+\d+\s+0\.\d{3}x\s+[01]\.\d{4}/m);
    expect(r.stdout).toMatch(/^\s+funnel\s+8\(50\) -> 16\s+\d+\s+0\.\d{3}x/m);
    expect(r.stdout).toMatch(/^query 0 \(label \d\) \[funnel\]: (\d+\/\d:\d\.\d{3} ?){10}$/m);
    const json = await cli([
      'search',
      '--index',
      join(dir, 'emb', 'test8.mrlidx'),
      '--queries',
      join(dir, 'emb', 'test8.safetensors'),
      '--k',
      '5',
      '--format',
      'json',
    ]);
    expectOk(json);
    const parsed = JSON.parse(json.stdout);
    expect(parsed).toMatchObject({ size: 300, dim: 8, queries: 300, k: 5 });
    expect(parsed.methods[0]).toMatchObject({ method: 'exact', recall: 1 });
    // Each query is in the index: its best hit is itself.
    expect(parsed.shown[0].hits[0]).toMatchObject({ row: 0 });
    expect(parsed.shown[0].hits).toHaveLength(5);
  });

  it('rejects a bad shortlist and a missing index with the fix', async () => {
    const r = await cli([
      'search',
      '--index',
      join(dir, 'emb', 'train.mrlidx'),
      '--queries',
      join(dir, 'emb', 'test16.npy'),
      '--shortlist',
      '8:5',
      '--k',
      '10',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: --shortlist keeps 5 candidates, fewer than --k 10. Keep at least 10, e.g. --shortlist 8:200.\n',
    );
    const missing = await cli([
      'search',
      '--index',
      join(dir, 'nothing.mrlidx'),
      '--queries',
      join(dir, 'emb', 'test16.npy'),
    ]);
    expect(missing.stderr).toBe(
      `error: the index file ${join(dir, 'nothing.mrlidx')} does not exist. Write it with mrl-cli embed (it prints the paths it wrote).\n`,
    );
  });
});

describe('mrl-cli report', () => {
  it('writes a Markdown report of the run', async () => {
    const r = await cli(['report', '--run-dir', run]);
    expectOk(r);
    expect(r.stdout).toContain('# mrl report');
    expect(r.stdout).toContain(': fashion-mnist, mlp, d=16, MRL vs FF');
    // The same columns, in the same order, as fit and eval print.
    expect(r.stdout).toContain('| dim | MRL top-1 % | MRL 1-NN % | MRL mAP@10 | FF top-1 % | FF 1-NN % | FF mAP@10 |');
    expect(r.stdout).toMatch(/^\| 16 \| \d+\.\d\d \| \d+\.\d\d \| 0\.\d{4} \| \d+\.\d\d \| \d+\.\d\d \| 0\.\d{4} \|$/m);
    // Models in nesting order.
    expect(r.stdout).toContain('Checkpoints: mrl (step 4), ff-8 (step 4), ff-16 (step 4)');
    const out = join(dir, 'report.md');
    expectOk(await cli(['report', '--run-dir', run, '--out', out]));
    expect(await readFile(out, 'utf8')).toContain('| dim | MRL top-1 % |');
  });
});

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeWordNetFiles } from '@mrl/text';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

// A user's own files, written from Debian's WordNet: glosses labelled by lexicographer class
// (JSONL), and example -> gloss triplets with a hard negative (JSONL).
let dir: string;
let files: { classification: string; pairs: string };
beforeAll(async () => {
  dir = await tempDir('text-files');
  const written = await writeWordNetFiles(join(dir, 'data'), {
    limit: 2400,
    lexnames: ['noun.animal', 'noun.plant', 'noun.artifact', 'verb.motion'],
  });
  files = { classification: written.classification, pairs: written.pairs };
});

function rows(stdout: string): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\d+)((?:\s+(?:\d+\.\d+|-))+)\s*$/.exec(line);
    if (m !== null) out.set(Number(m[1]), m[2]!.trim().split(/\s+/).map(Number));
  }
  return out;
}

describe('mrl-cli fit --modality text --data <your file>', () => {
  it('classifies a JSONL of texts with FF and PCA baselines, then embeds new texts', { timeout: 600_000 }, async () => {
    const run = join(dir, 'classify');
    const common = ['--model-config', '{"numLayers":1}', '--max-length', '24', '--steps', '60', '--batch-size', '32'];
    const r = await cli([
      'fit',
      '--modality',
      'text',
      '--data',
      files.classification,
      '--compare',
      'ff,svd',
      '--dims',
      '8,32,128',
      ...common,
      '--run-dir',
      run,
    ]);
    expectOk(r);
    // The table names the file and puts FF and SVD beside the Matryoshka model (without --head, text
    // classify files train the shared head: MRL-E), with the majority class under it.
    expect(r.stdout).toMatch(/lexnames\.jsonl, bert-tiny, d=128, MRL-E vs FF vs SVD: classify, 4 classes/);
    expect(r.stdout).toMatch(
      /^dim\s+MRL-E top-1 %\s+MRL-E 1-NN %\s+FF top-1 %\s+FF 1-NN %\s+SVD top-1 %\s+SVD 1-NN %$/m,
    );
    const majority = Number(/^baseline \(majority class\): top-1 % (\d+\.\d\d)/m.exec(r.stdout)![1]);
    const table = rows(r.stdout);
    expect([...table.keys()]).toEqual([8, 32, 128]);
    // MRL-E's head beats the majority class at every dim.
    for (const [dim, [top1]] of table) expect(top1, `MRL-E top-1 at ${dim}`).toBeGreaterThan(majority + 10);
    const labels = JSON.parse(await readFile(join(run, 'labels.json'), 'utf8'));
    expect(JSON.stringify(labels)).toContain('noun.animal');

    // New texts, one a line, through the trained encoder: 8-dim prefixes, renormalised.
    const input = join(dir, 'new.txt');
    await writeFile(input, 'a large wild cat with a striped coat\nto run or walk fast\n\na tool with a sharp blade\n');
    const out = join(dir, 'new-emb');
    const e = await cli([
      'embed',
      '--run-dir',
      run,
      '--input',
      input,
      '--dim',
      '8',
      '--formats',
      'jsonl',
      '--out',
      out,
    ]);
    expectOk(e);
    expect(e.stdout).toContain('embedded 3 texts from');
    const lines = (await readFile(`${out}.jsonl`, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(['1', '2', '4']);
    for (const l of lines) expect(Math.hypot(...(l.embedding as number[]))).toBeCloseTo(1, 4);
  });

  it('--head picks separate heads (MRL) or one shared head (MRL-E) for a classify file, as for vision', {
    timeout: 300_000,
  }, async () => {
    // The head's variables in the final checkpoint show which head trained; the table names it.
    const headKeys = async (run: string): Promise<string[]> => {
      const folder = join(run, 'checkpoints');
      const file = (await readdir(folder))
        .filter((f) => f.endsWith('.safetensors'))
        .sort()
        .at(-1)!;
      const bytes = await readFile(join(folder, file));
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8'));
      return Object.keys(header).filter((k) => k.startsWith('param/objective/'));
    };
    const tiny = ['--model-config', '{"numLayers":1}', '--max-length', '16', '--steps', '2', '--batch-size', '8'];
    const runs = { separate: join(dir, 'head-separate'), shared: join(dir, 'head-shared') };
    for (const head of ['separate', 'shared'] as const) {
      const r = await cli([
        'fit',
        '--modality',
        'text',
        '--data',
        files.classification,
        '--dims',
        '8,32,128',
        '--head',
        head,
        '--train-limit',
        '64',
        '--test-limit',
        '32',
        ...tiny,
        '--run-dir',
        runs[head],
      ]);
      expectOk(r);
      const label = head === 'separate' ? 'MRL' : 'MRL-E';
      expect(r.stdout).toMatch(new RegExp(`^dim\\s+${label} top-1 %\\s+${label} 1-NN %`, 'm'));
    }
    expect((await headKeys(runs.separate)).sort()).toEqual(
      ['b128', 'b32', 'b8', 'w128', 'w32', 'w8'].map((k) => `param/objective/${k}`).sort(),
    );
    expect((await headKeys(runs.shared)).sort()).toEqual(['param/objective/b', 'param/objective/w']);
  });

  it('trains on pairs with hard negatives and beats chance at every dim', { timeout: 600_000 }, async () => {
    const r = await cli([
      'fit',
      '--modality',
      'text',
      '--task',
      'pairs',
      '--data',
      files.pairs,
      '--model-config',
      '{"numLayers":1}',
      '--max-length',
      '24',
      '--steps',
      '60',
      '--dims',
      '8,32,128',
      '--run-dir',
      join(dir, 'pairs'),
    ]);
    expectOk(r);
    expect(r.stdout).toMatch(/pairs\.jsonl, bert-tiny, d=128, MRL: pairs, \d+ test anchors over \d+ candidates/);
    const chance = Number(/^baseline \(chance\): R@1 % [\d.]+, R@10 % (\d+\.\d\d)$/m.exec(r.stdout)![1]);
    for (const [dim, [, r10]] of rows(r.stdout)) expect(r10, `R@10 at ${dim}`).toBeGreaterThan(2 * chance);
  });

  it('a missing field is one error naming the file and line, before the run folder exists', async () => {
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"text": "a cat", "label": "animal"}\n{"txt": "a dog", "label": "animal"}\n');
    const r = await cli(['fit', '--modality', 'text', '--data', bad, '--run-dir', join(dir, 'bad-run')]);
    const line = expectOneParagraphError(r);
    expect(line).toContain('bad.jsonl');
    expect(line).toMatch(/line 2/);
  });
});

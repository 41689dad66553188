import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readOnnxMetadata } from '@mrl/core';
import { cli, expectOk, expectOneParagraphError, REPO, TINY, tempDir } from './helpers.js';

// A small random BERT in Hugging Face layout, written by packages/text/test/fixtures/make_hf_bert.py.
const FIXTURE = join(REPO, 'packages/text/test/fixtures/hf-bert');

let dir: string;
beforeAll(async () => {
  dir = await tempDir('export');
});

describe('mrl-cli fit --init, then mrl-cli export', () => {
  it('fine-tunes a pretrained folder and exports the run as a sentence-transformers folder', async () => {
    const run = join(dir, 'run');
    const fit = expectOk(
      await cli([
        'fit',
        '--modality',
        'text',
        '--task',
        'retrieve',
        '--init',
        FIXTURE,
        '--dims',
        '8,16,32',
        '--train-limit',
        '64',
        '--test-limit',
        '20',
        '--batch-size',
        '8',
        '--run-dir',
        run,
      ]),
    );
    // Paths under the working folder are printed relative to it.
    expect(fit.stderr).toContain(`encoder: pretrained ${relative(REPO, FIXTURE)} d=32 layers=2 heads=4`);
    expect(existsSync(join(run, 'model', 'model.safetensors'))).toBe(true);

    const out = join(dir, 'st');
    const r = expectOk(await cli(['export', '--run-dir', run, '--format', 'sentence-transformers', '--out', out]));
    expect(r.stdout).toContain('modules.json, 1_Pooling/config.json');
    for (const file of ['config.json', 'tokenizer.json', 'onnx/model.onnx', 'model.safetensors', 'README.md'])
      expect(existsSync(join(out, file)), file).toBe(true);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.mrl.nesting_dims).toEqual([8, 16, 32]);
    expect(config.mrl.evaluation.map((row: { dim: number }) => row.dim)).toEqual([8, 16, 32]);
    const card = await readFile(join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nlibrary_name: sentence-transformers\n/);
    expect(card).toMatch(/\| dim \| recall@1 \| recall@10 \|\n\|---:\|---:\|---:\|\n\| 8 \| \d+\.\d% \| \d+\.\d% \|/);
  });

  it('exports a vision MLP run as ONNX with its nesting dims, and refuses other formats for it', async () => {
    const run = join(dir, 'mlp');
    expectOk(await cli(['fit', '--modality', 'vision', '--model', 'mlp', ...TINY, '--run-dir', run]));
    expectOk(await cli(['export', '--run-dir', run, '--format', 'onnx']));
    const { opset, metadata } = readOnnxMetadata(await readFile(join(run, 'export-onnx', 'onnx', 'model.onnx')));
    expect(opset).toBe(17);
    expect(JSON.parse(metadata['mrl.nesting_dims']!)).toEqual([8, 16]);
    const card = await readFile(join(run, 'export-onnx', 'README.md'), 'utf8');
    // The model card carries the run's per-dim table, as fit and eval print it.
    expect(card).toMatch(/dim\s+MRL top-1 %\s+MRL 1-NN %\s+MRL mAP@10\n[- ]+\n\s+8\s+\d+\.\d\d\s/);
    const hf = expectOneParagraphError(await cli(['export', '--run-dir', run, '--format', 'hf']));
    expect(hf).toContain('the model in ');
    expect(hf).toContain("is 'mlp' and --format is hf.");
  });

  it('names a run folder without a text model, and --init outside text runs', async () => {
    const missing = expectOneParagraphError(await cli(['export', '--run-dir', join(dir, 'nothing')]));
    expect(missing).toMatch(/^error: there is no trained model in .*nothing\/model \(config\.json is missing\)\./);
    const vision = expectOneParagraphError(
      await cli(['fit', '--modality', 'vision', '--model', 'mlp', '--dim', '16', '--init', FIXTURE]),
    );
    expect(vision).toBe('error: --init applies to text runs, not --modality vision. Leave out --init.');
  });
});

import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyAdaptor, loadAdaptor, readOnnxMetadata, truncateAndNormalize } from '@mrl/core';
import * as ort from 'onnxruntime-node';
import { decodeNpy, encodeNpy } from '../src/npy.js';
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

  it('exports a vision run with --adaptor: the graph outputs the adapted embedding, as applyAdaptor computes it', async () => {
    const run = join(dir, 'mlp-adapted');
    expectOk(await cli(['fit', '--modality', 'vision', '--model', 'mlp', ...TINY, '--run-dir', run]));
    expectOk(await cli(['embed', '--run-dir', run, '--split', 'test', '--formats', 'npy']));
    const adaptorDir = join(run, 'adaptor');
    // The adaptor trains on 600 of the embeddings: enough to move it off the identity, quick.
    const all = decodeNpy(await readFile(join(run, 'embeddings', 'test-d16.npy')), 'test-d16.npy');
    const embeddings = join(run, 'embeddings', 'some.npy');
    await writeFile(embeddings, encodeNpy((all.data as Float32Array).subarray(0, 600 * 16), [600, 16]));
    expectOk(await cli(['adapt', '--embeddings', embeddings, '--dims', '8,16', '--epochs', '2', '--out', adaptorDir]));
    expectOk(await cli(['export', '--run-dir', run, '--format', 'onnx']));
    expectOk(
      await cli([
        'export',
        '--run-dir',
        run,
        '--format',
        'onnx',
        '--adaptor',
        adaptorDir,
        '--out',
        join(run, 'adapted'),
      ]),
    );
    const bytes = await readFile(join(run, 'adapted', 'onnx', 'model.onnx'));
    const weights = await loadAdaptor(adaptorDir);
    expect(JSON.parse(readOnnxMetadata(bytes).metadata['mrl.adaptor']!)).toEqual(weights.config);
    const config = JSON.parse(await readFile(join(run, 'adapted', 'config.json'), 'utf8'));
    expect(config.mrl.adaptor).toEqual(weights.config);
    expect(await readFile(join(run, 'adapted', 'README.md'), 'utf8')).toContain('`embedding` is the adapted vector');
    const n = 5;
    const input = Float32Array.from({ length: n * 784 }, (_, i) => ((i * 7919) % 256) / 255);
    const feeds = { input: new ort.Tensor('float32', input, [n, 784]) };
    const plain = await ort.InferenceSession.create(join(run, 'export-onnx', 'onnx', 'model.onnx'));
    const adapted = await ort.InferenceSession.create(bytes);
    const base = (await plain.run(feeds)).embedding!.data as Float32Array;
    const out = await adapted.run(feeds);
    const expected = applyAdaptor(weights, { data: truncateAndNormalize(base, n, 16, 16), rows: n, dim: 16 }).data;
    const worst = (a: Float32Array, b: Float32Array) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));
    expect(out.embedding!.dims).toEqual([n, 16]);
    expect(worst(out.embedding!.data as Float32Array, expected)).toBeLessThan(1e-5);
    expect(worst(out.unadapted_embedding!.data as Float32Array, base)).toBeLessThan(1e-6);
    // The adaptor changed the vectors: the graph does more than renormalise.
    expect(worst(expected, truncateAndNormalize(base, n, 16, 16))).toBeGreaterThan(1e-3);
    await plain.release();
    await adapted.release();
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

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, MrlError, readOnnxMetadata, readSafetensors } from '@mrl/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BertEncoder, BertPooling } from '../src/bert.js';
import { exportTextModel } from '../src/export.js';
import { loadHfBert } from '../src/hf-bert.js';
import type { TextTokenizer } from '../src/tokenizer/tokenizer.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'hf-bert');
const TEXTS = ['the cat sat on the mat', 'a big red bird sang in the tree', 'fish swim'];
const DIMS = [8, 16, 32];
const PYTHON = '/usr/bin/python3';
const hasOnnx = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;

let scratch: string;
beforeAll(async () => {
  await initBackend('wasm');
  scratch = await mkdtemp(join(tmpdir(), 'mrl-export-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** mrl's own pooled embeddings [texts, d] and the padded batch they came from. */
function mrlEmbeddings(encoder: BertEncoder, tokenizer: TextTokenizer) {
  const batch = tokenizer.encodeBatch(TEXTS, 24);
  const shape: [number, number] = [batch.batch, batch.length];
  const z = tf.tidy(
    () =>
      encoder
        .encode(
          {
            ids: tf.tensor2d(batch.ids, shape, 'int32'),
            attentionMask: tf.tensor2d(batch.attentionMask, shape, 'int32'),
          },
          false,
        )
        .dataSync() as Float32Array,
  );
  return { z, batch };
}

async function load(pooling: BertPooling) {
  return loadHfBert(FIXTURE, { pooling });
}

describe('exportTextModel --format onnx', () => {
  it('transformers.js pipeline("feature-extraction") loads the folder offline and returns mrl\'s embeddings within 1e-4', async () => {
    const { encoder, tokenizer } = await load('mean');
    const out = join(scratch, 'onnx-mean');
    const files = await exportTextModel(encoder, out, { format: 'onnx', dims: DIMS, tokenizerDir: tokenizer.dir });
    expect(files).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'onnx/model.onnx', 'README.md']));
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${dirname(out)}/`;
    const extractor = await pipeline('feature-extraction', basename(out), { local_files_only: true, dtype: 'fp32' });
    const result = await extractor(TEXTS, { pooling: 'mean', normalize: false });
    const { z } = mrlEmbeddings(encoder, tokenizer);
    expect(result.dims).toEqual([TEXTS.length, 32]);
    expect(maxDiff(result.data as Float32Array, z)).toBeLessThan(1e-4);

    // Truncating to the smallest nesting dim, read from the config, and renormalising.
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { mrl: { nesting_dims: number[] } };
    const m = config.mrl.nesting_dims[0]!;
    expect(m).toBe(8);
    for (let row = 0; row < TEXTS.length; row++) {
      const prefix = Array.from((result.data as Float32Array).slice(row * 32, row * 32 + m));
      const norm = Math.hypot(...prefix);
      const ours = Array.from(z.slice(row * 32, row * 32 + m));
      const oursNorm = Math.hypot(...ours);
      expect(
        maxDiff(
          prefix.map((v) => v / norm),
          ours.map((v) => v / oursNorm),
        ),
      ).toBeLessThan(1e-4);
    }
    await extractor.dispose();
    encoder.dispose();
  });

  for (const pooling of ['mean', 'cls', 'pooler'] as const) {
    it(`onnxruntime-node's sentence_embedding equals mrl's ${pooling}-pooled embedding; metadata holds the dims and opset`, async () => {
      const { encoder, tokenizer } = await load(pooling);
      const out = join(scratch, `ort-${pooling}`);
      await exportTextModel(encoder, out, { format: 'onnx', dims: DIMS, tokenizerDir: tokenizer.dir });
      const bytes = await readFile(join(out, 'onnx', 'model.onnx'));
      const { opset, metadata } = readOnnxMetadata(bytes);
      expect(opset).toBe(17);
      expect(JSON.parse(metadata['mrl.nesting_dims']!)).toEqual(DIMS);
      expect(metadata['mrl.pooling']).toBe(pooling);
      const { z, batch } = mrlEmbeddings(encoder, tokenizer);
      const session = await ort.InferenceSession.create(join(out, 'onnx', 'model.onnx'));
      const int64 = (a: Int32Array) =>
        new ort.Tensor('int64', BigInt64Array.from(Array.from(a, BigInt)), [batch.batch, batch.length]);
      const result = await session.run({
        input_ids: int64(batch.ids),
        attention_mask: int64(batch.attentionMask),
        token_type_ids: int64(new Int32Array(batch.ids.length)),
      });
      expect(maxDiff(result.sentence_embedding!.data as Float32Array, z)).toBeLessThan(1e-4);
      await session.release();
      encoder.dispose();
    });
  }

  it.skipIf(!hasOnnx)(
    'passes onnx.checker (full check) (skipped only where Debian python3-onnx is absent)',
    async () => {
      const { encoder, tokenizer } = await load('pooler');
      const out = join(scratch, 'checker');
      await exportTextModel(encoder, out, { format: 'onnx', dims: DIMS, tokenizerDir: tokenizer.dir });
      const check = spawnSync(
        PYTHON,
        [
          '-c',
          'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")',
          join(out, 'onnx', 'model.onnx'),
        ],
        { encoding: 'utf8' },
      );
      expect(check.stderr).toBe('');
      expect(check.stdout.trim()).toBe('ok');
      encoder.dispose();
    },
  );
});

describe('exportTextModel --format hf / sentence-transformers', () => {
  it('hf: model.safetensors under BertModel names re-imports to the same outputs', async () => {
    const { encoder, tokenizer } = await load('mean');
    const out = join(scratch, 'hf');
    await exportTextModel(encoder, out, { format: 'hf', dims: DIMS, tokenizerDir: tokenizer.dir });
    const { tensors } = await readSafetensors(join(out, 'model.safetensors'));
    expect(tensors.get('encoder.layer.1.attention.self.query.weight')!.shape).toEqual([32, 32]);
    const again = await loadHfBert(out, { pooling: 'mean' });
    expect(again.encoder.config.activation).toBe('erf');
    expect(maxDiff(mrlEmbeddings(again.encoder, again.tokenizer).z, mrlEmbeddings(encoder, tokenizer).z)).toBe(0);
    again.encoder.dispose();
    encoder.dispose();
  });

  it('sentence-transformers: modules, pooling config and a model card with front matter and the per-dim table', async () => {
    const { encoder, tokenizer } = await load('cls');
    const out = join(scratch, 'st');
    const table = DIMS.map((dim, i) => ({ dim, values: { 'recall@10': 0.5 + 0.1 * i } }));
    await exportTextModel(encoder, out, {
      format: 'sentence-transformers',
      dims: DIMS,
      tokenizerDir: tokenizer.dir,
      table,
    });
    const modules = JSON.parse(await readFile(join(out, 'modules.json'), 'utf8')) as { type: string }[];
    expect(modules.map((m) => m.type)).toEqual([
      'sentence_transformers.models.Transformer',
      'sentence_transformers.models.Pooling',
    ]);
    const pooling = JSON.parse(await readFile(join(out, '1_Pooling', 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(pooling).toMatchObject({
      word_embedding_dimension: 32,
      pooling_mode_cls_token: true,
      pooling_mode_mean_tokens: false,
    });
    expect(existsSync(join(out, 'config_sentence_transformers.json'))).toBe(true);
    const card = await readFile(join(out, 'README.md'), 'utf8');
    expect(card.startsWith('---\nlibrary_name: sentence-transformers\n')).toBe(true);
    expect(card).toContain('  nesting_dims: [8, 16, 32]');
    expect(card).toContain('| dim | recall@10 |');
    expect(card).toContain('| 8 | 50.0% |');
    expect(card).toContain('| 32 | 70.0% |');
    expect(card).toContain('truncate_dim=8');
    encoder.dispose();
  });

  it('refuses a pooler-pooled model as sentence-transformers, and dims beyond d', async () => {
    const { encoder, tokenizer } = await load('pooler');
    const st = exportTextModel(encoder, join(scratch, 'x'), {
      format: 'sentence-transformers',
      dims: DIMS,
      tokenizerDir: tokenizer.dir,
    });
    await expect(st).rejects.toSatisfy((e: unknown) => MrlError.is(e) && e.kind === 'unsupported');
    await expect(
      exportTextModel(encoder, join(scratch, 'y'), { format: 'onnx', dims: [8, 64], tokenizerDir: tokenizer.dir }),
    ).rejects.toThrow("nesting dim 64 exceeds the encoder's d = 32.");
    encoder.dispose();
  });
});

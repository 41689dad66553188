import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readOnnxMetadata, readSafetensors } from '@mrl/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportTextModel } from '../src/export.js';
import { fitText } from '../src/fit.js';
import { bertLayerDecay } from '../src/bert.js';
import { loadHfBert } from '../src/hf-bert.js';

// Import the PyTorch-written BERT (fixtures/make_hf_bert.py) -> fine-tune every layer -> the run's
// saved model -> export -> transformers.js returns the same embeddings.
const FIXTURE = join(import.meta.dirname, 'fixtures', 'hf-bert');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-fine-tune-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('fitText with init: a pretrained folder fine-tuned end to end', () => {
  it('trains every imported layer 50 steps, saves a loadable model, and its export serves the same embeddings (transformers.js, onnxruntime-node)', async () => {
    const runDir = join(dir, 'run');
    const report = await fitText(
      {
        task: 'retrieve',
        init: FIXTURE,
        modelOverrides: { dropout: 0 },
        steps: 50,
        batchSize: 8,
        lr: 1e-3,
        trainLimit: 400,
        testLimit: 40,
        databaseSize: 100,
        backend: 'wasm',
        dims: [8, 16, 32],
        maxLength: 16,
      },
      { runDir, seed: 0, resume: false, log: () => {} },
    );
    expect(report.metrics['steps']).toBe(50);
    expect((report.metrics['recallAt10'] as number[]).length).toBe(3);

    // Every layer moved (nothing frozen), and the saved model keeps the HF names and the erf GELU.
    const before = (await readSafetensors(join(FIXTURE, 'model.safetensors'))).tensors;
    const after = (await readSafetensors(join(runDir, 'model', 'model.safetensors'))).tensors;
    for (const name of [
      'embeddings.word_embeddings.weight',
      'encoder.layer.0.attention.self.query.weight',
      'encoder.layer.1.output.dense.weight',
      'encoder.layer.1.output.LayerNorm.weight',
    ]) {
      expect(maxDiff(after.get(name)!.data, before.get(name)!.data), name).toBeGreaterThan(1e-5);
    }
    const config = JSON.parse(await readFile(join(runDir, 'model', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['hidden_act']).toBe('gelu');
    expect(config['mrl']).toMatchObject({ nesting_dims: [8, 16, 32], pooling: 'mean' });
    const card = await readFile(join(runDir, 'model', 'README.md'), 'utf8');
    expect(card).toContain('| dim | recall@1 | recall@10 |');

    // Reload the run's model, export it, and serve it through transformers.js.
    const { encoder, tokenizer } = await loadHfBert(join(runDir, 'model'));
    const out = join(dir, 'served');
    await exportTextModel(encoder, out, { format: 'onnx', dims: [8, 16, 32], tokenizerDir: tokenizer.dir });
    const texts = ['the cat sat on the mat', 'a small bird sang'];
    const batch = tokenizer.encodeBatch(texts, 16);
    const shape: [number, number] = [batch.batch, batch.length];
    const ours = tf.tidy(
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
    const { env, pipeline } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${dirname(out)}/`;
    const extractor = await pipeline('feature-extraction', basename(out), { local_files_only: true, dtype: 'fp32' });
    const served = await extractor(texts, { pooling: 'mean', normalize: false });
    expect(maxDiff(served.data as Float32Array, ours)).toBeLessThan(1e-4);
    await extractor.dispose();

    // onnxruntime-node on the graph's own pooled output, and truncation from the graph's metadata.
    const bytes = await readFile(join(out, 'onnx', 'model.onnx'));
    const smallest = (JSON.parse(readOnnxMetadata(bytes).metadata['mrl.nesting_dims']!) as number[])[0]!;
    expect(smallest).toBe(8);
    const session = await ort.InferenceSession.create(bytes);
    const int64 = (a: Int32Array) => new ort.Tensor('int64', BigInt64Array.from(a, BigInt), shape);
    const result = await session.run({
      input_ids: int64(batch.ids),
      attention_mask: int64(batch.attentionMask),
      token_type_ids: int64(new Int32Array(batch.ids.length)),
    });
    const pooled = result.sentence_embedding!.data as Float32Array;
    expect(maxDiff(pooled, ours)).toBeLessThan(1e-4);
    const d = encoder.embeddingDim;
    for (let row = 0; row < texts.length; row++) {
      const cut = (z: Float32Array) => {
        const prefix = Array.from(z.slice(row * d, row * d + smallest));
        const norm = Math.hypot(...prefix);
        return prefix.map((v) => v / norm);
      };
      expect(maxDiff(cut(pooled), cut(ours))).toBeLessThan(1e-4);
    }
    await session.release();
    encoder.dispose();
  });

  it('layerDecay scales each block and the embeddings below it (bertLayerDecay), wired into the Trainer', async () => {
    const { encoder } = await loadHfBert(FIXTURE, { pooling: 'pooler' });
    const scales = bertLayerDecay(encoder, 0.5);
    expect(scales.get('embeddings/token')).toBe(0.125); // 2 blocks: 0.5^3
    expect(scales.get('layer0/q/w')).toBe(0.25);
    expect(scales.get('layer1/ff2/b')).toBe(0.5);
    expect(scales.get('pooler/w')).toBe(1);
    encoder.dispose();

    // AdamW moves a weight about lr x scale a step: the top block (0.1) far more than the embeddings (0.001).
    const runDir = join(dir, 'decay');
    await fitText(
      {
        task: 'retrieve',
        init: FIXTURE,
        layerDecay: 0.1,
        modelOverrides: { dropout: 0 },
        steps: 10,
        batchSize: 8,
        lr: 1e-3,
        trainLimit: 100,
        testLimit: 20,
        databaseSize: 40,
        backend: 'wasm',
        dims: [8, 32],
        maxLength: 16,
      },
      { runDir, seed: 0, resume: false, log: () => {} },
    );
    const before = (await readSafetensors(join(FIXTURE, 'model.safetensors'))).tensors;
    const after = (await readSafetensors(join(runDir, 'model', 'model.safetensors'))).tensors;
    const moved = (name: string) => maxDiff(after.get(name)!.data, before.get(name)!.data);
    const top = moved('encoder.layer.1.output.dense.weight');
    expect(top).toBeGreaterThan(1e-5);
    expect(top).toBeGreaterThan(20 * moved('embeddings.LayerNorm.weight'));
    expect(top).toBeGreaterThan(20 * moved('embeddings.position_embeddings.weight'));
  });
});

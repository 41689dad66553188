import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createRandom, encodeSafetensors, initBackend, MrlError, readSafetensors } from '@mrl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignHfBertWeights, bertConfigFromHf, hfBertTensors, loadHfBert, loadHfTokenizer } from '../src/hf-bert.js';
import { BertEncoder, type BertPooling, type TokenBatch } from '../src/bert.js';

// Fixtures written by fixtures/make_hf_bert.py (Debian python3-torch); no Python at test time.
const FIXTURE = join(import.meta.dirname, 'fixtures', 'hf-bert');

interface Golden {
  lastHiddenState: number[];
  poolerOutput: number[];
  meanPooled: number[];
  layerMeans: number[][];
}
type Outputs = { ids: number[]; attentionMask: number[]; segmentIds: number[]; shape: [number, number] } & Record<
  'F32' | 'F16' | 'BF16',
  Golden
>;

let outputs: Outputs;
let scratch: string;
beforeAll(async () => {
  await initBackend('wasm');
  outputs = JSON.parse(await readFile(join(FIXTURE, 'outputs.json'), 'utf8')) as Outputs;
  scratch = await mkdtemp(join(tmpdir(), 'mrl-hf-bert-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function fixtureBatch(): TokenBatch {
  return {
    ids: tf.tensor2d(outputs.ids, outputs.shape, 'int32'),
    attentionMask: tf.tensor2d(outputs.attentionMask, outputs.shape, 'int32'),
    segmentIds: tf.tensor2d(outputs.segmentIds, outputs.shape, 'int32'),
  };
}

/** Largest absolute difference. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function run(encoder: BertEncoder): { tokens: Float32Array; pooled: Float32Array } {
  return tf.tidy(() => {
    const batch = fixtureBatch();
    return {
      tokens: encoder.encodeTokens(batch, false).dataSync() as Float32Array,
      pooled: encoder.encode(batch, false).dataSync() as Float32Array,
    };
  });
}

describe('loadHfBert matches PyTorch BertModel outputs within 1e-4', () => {
  const cases: [string, 'F32' | 'F16' | 'BF16', BertPooling, 'lastHiddenState' | 'poolerOutput' | 'meanPooled'][] = [
    ['model.safetensors', 'F32', 'pooler', 'poolerOutput'],
    ['model-f16.safetensors', 'F16', 'mean', 'meanPooled'],
    ['model-bf16.safetensors', 'BF16', 'cls', 'lastHiddenState'],
  ];
  for (const [file, dtype, pooling, pooledKey] of cases) {
    it(`${file} (${dtype}, pooling ${pooling})`, async () => {
      const { encoder, tokenizer } = await loadHfBert(FIXTURE, { weightsFile: file, pooling });
      expect(encoder.config.activation).toBe('erf');
      expect(tokenizer.vocabSize).toBe(encoder.config.vocabSize);
      const golden = outputs[dtype];
      const { tokens, pooled } = run(encoder);
      expect(maxDiff(tokens, golden.lastHiddenState)).toBeLessThan(1e-4);
      const d = encoder.embeddingDim;
      const seqLen = outputs.shape[1];
      const expected =
        pooledKey === 'lastHiddenState'
          ? [0, 1].flatMap((row) => golden.lastHiddenState.slice(row * seqLen * d, row * seqLen * d + d))
          : golden[pooledKey];
      expect(maxDiff(pooled, expected)).toBeLessThan(1e-4);
      encoder.dispose();
    });
  }

  it('encodeLayers gives the mean-pooled embedding after every layer (2D Matryoshka)', async () => {
    const { encoder } = await loadHfBert(FIXTURE, { pooling: 'mean' });
    const layers = tf.tidy(() => encoder.encodeLayers(fixtureBatch(), false).map((z) => z.dataSync() as Float32Array));
    expect(layers.length).toBe(2);
    layers.forEach((z, l) => expect(maxDiff(z, outputs.F32.layerMeans[l]!)).toBeLessThan(1e-4));
    encoder.dispose();
  });

  it('does not match with the tanh GELU (the erf option matters)', async () => {
    const { encoder } = await loadHfBert(FIXTURE, { pooling: 'mean' });
    const tanh = new BertEncoder({ ...encoder.config, activation: 'tanh' }, createRandom(0));
    const { tensors } = await readSafetensors(join(FIXTURE, 'model.safetensors'));
    assignHfBertWeights(tanh, tensors, 'model.safetensors');
    expect(maxDiff(run(encoder).tokens, outputs.F32.lastHiddenState)).toBeLessThan(1e-4);
    expect(maxDiff(run(tanh).tokens, outputs.F32.lastHiddenState)).toBeGreaterThan(1e-4);
    encoder.dispose();
    tanh.dispose();
  });

  it("builds the tokenizer from the folder's vocab.txt (lower-casing, WordPiece continuations)", async () => {
    const tokenizer = await loadHfTokenizer(FIXTURE);
    // vocab: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 the=5 a=6 cat=7 dog=8 ... ##s=28
    expect(tokenizer.encode('The Cats')).toEqual([2, 5, 7, 28, 3]);
    expect(tokenizer.encode('zebra')).toEqual([2, 1, 3]);
  });

  it('round-trips its weights under the Hugging Face names', async () => {
    const { encoder } = await loadHfBert(FIXTURE, { pooling: 'pooler' });
    const { tensors } = await readSafetensors(join(FIXTURE, 'model.safetensors'));
    const exported = hfBertTensors(encoder);
    expect([...exported.keys()].sort()).toEqual(
      [...tensors.keys()].filter((k) => k !== 'embeddings.position_ids').sort(),
    );
    for (const [name, t] of exported) {
      expect(t.shape, name).toEqual(tensors.get(name)!.shape);
      expect(maxDiff(t.data, tensors.get(name)!.data), name).toBe(0);
    }
    encoder.dispose();
  });
});

describe('bad Hugging Face folders are named clearly', () => {
  async function folderWith(
    tensors: Map<string, { shape: number[]; data: Float32Array }>,
    config?: object,
  ): Promise<string> {
    const dir = await mkdtemp(join(scratch, 'case-'));
    for (const f of ['config.json', 'vocab.txt', 'tokenizer_config.json'])
      await copyFile(join(FIXTURE, f), join(dir, f));
    if (config !== undefined) await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
    return dir;
  }
  async function f32(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const { tensors } = await readSafetensors(join(FIXTURE, 'model.safetensors'));
    tensors.delete('embeddings.position_ids');
    return tensors as Map<string, { shape: number[]; data: Float32Array }>;
  }
  async function failure(dir: string): Promise<MrlError> {
    const e = await loadHfBert(dir, { pooling: 'pooler' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(MrlError.is(e), String(e)).toBe(true);
    return e as MrlError;
  }

  it('a missing tensor: its name, shape and the variable it was for', async () => {
    const tensors = await f32();
    tensors.delete('encoder.layer.1.attention.self.key.weight');
    const dir = await folderWith(tensors);
    const e = await failure(dir);
    expect(e.message).toBe(
      `${join(dir, 'model.safetensors')} has no tensor 'encoder.layer.1.attention.self.key.weight' (shape [32, 32]) for the encoder's layer1/k/w.`,
    );
  });

  it('an extra tensor', async () => {
    const tensors = await f32();
    tensors.set('encoder.layer.2.output.dense.bias', { shape: [32], data: new Float32Array(32) });
    const e = await failure(await folderWith(tensors));
    expect(e.message).toMatch(
      /has 1 tensor\(s\) the BERT encoder does not use: encoder\.layer\.2\.output\.dense\.bias\.$/,
    );
  });

  it('a shape mismatch: expected and found', async () => {
    const tensors = await f32();
    tensors.set('encoder.layer.0.intermediate.dense.weight', { shape: [48, 32], data: new Float32Array(48 * 32) });
    const e = await failure(await folderWith(tensors));
    expect(e.message).toMatch(
      /: tensor 'encoder\.layer\.0\.intermediate\.dense\.weight' has shape \[48, 32\], config\.json needs \[64, 32\]\.$/,
    );
  });

  it('a non-finite weight, with the tensor and index', async () => {
    const tensors = await f32();
    tensors.get('embeddings.LayerNorm.bias')!.data[3] = Number.NaN;
    const e = await failure(await folderWith(tensors));
    expect(e.message).toMatch(/: tensor 'embeddings\.LayerNorm\.bias' holds NaN at flat index 3\.$/);
  });

  it('an unsupported architecture or activation', () => {
    expect(() => bertConfigFromHf({ model_type: 'roberta', architectures: ['RobertaModel'] }, 'mean')).toThrow(
      `config.json: model_type 'roberta' (architectures ["RobertaModel"]) is not a BERT model; mrl imports BERT checkpoints only.`,
    );
    expect(() => bertConfigFromHf({ model_type: 'bert', hidden_act: 'relu' }, 'mean')).toThrow(
      "config.json: hidden_act 'relu' is not supported; mrl's BERT has gelu, gelu_new, gelu_pytorch_tanh, gelu_fast.",
    );
    expect(() => bertConfigFromHf({ model_type: 'bert', position_embedding_type: 'relative_key' }, 'mean')).toThrow(
      "config.json: position_embedding_type 'relative_key' is not supported; mrl's BERT has absolute positions.",
    );
  });

  it('a missing weights file names the pickle it will not read', async () => {
    const dir = await mkdtemp(join(scratch, 'bin-'));
    await copyFile(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
    await writeFile(join(dir, 'pytorch_model.bin'), 'x');
    const e = await failure(dir);
    expect(e.message).toBe(
      `no weights at ${join(dir, 'model.safetensors')} (the folder has pytorch_model.bin, a pickle mrl does not read).`,
    );
  });

  it('assignHfBertWeights leaves the pooler out unless the encoder pools with it', async () => {
    const { encoder } = await loadHfBert(FIXTURE, { pooling: 'mean' });
    expect([...encoder.variables().keys()].some((k) => k.startsWith('pooler'))).toBe(false);
    const tensors = await f32();
    expect(() => assignHfBertWeights(encoder, tensors, 'x')).not.toThrow();
    encoder.dispose();
  });
});

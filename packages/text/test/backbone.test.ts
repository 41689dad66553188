import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClassificationObjective,
  createRandom,
  MatryoshkaLoss,
  MatryoshkaModel,
  MrlError,
  SharedHead,
  Trainer,
} from '@mrl/core';
import { backboneBatches, OnnxBackboneEncoder } from '../src/backbone.js';
import { fitText } from '../src/fit.js';
import { TextTokenizer } from '../src/tokenizer/tokenizer.js';
import { writeTinyOnnxModel, type TinyOnnxModel } from './helpers/tiny-onnx.js';

const WORDS = [
  'the',
  'a',
  'red',
  'blue',
  'green',
  'big',
  'small',
  'cat',
  'dog',
  'fish',
  'bird',
  'runs',
  'sleeps',
  'eats',
];
const ANIMALS = ['cat', 'dog', 'fish', 'bird'];

let root: string;
let model: TinyOnnxModel;
let tokenizer: TextTokenizer;
let wordnetDir: string;

/** The 72 sentences of the toy task; the label is the animal. */
function toySentences(): { texts: string[]; labels: number[] } {
  const texts: string[] = [];
  const labels: number[] = [];
  for (const color of ['red', 'blue', 'green'])
    for (const size of ['big', 'small'])
      for (const [label, animal] of ANIMALS.entries())
        for (const verb of ['runs', 'sleeps', 'eats']) {
          texts.push(`the ${size} ${color} ${animal} ${verb}`);
          labels.push(label);
        }
  return { texts, labels };
}

/** A WordNet-format folder whose noun glosses are the toy sentences, classed by animal (noun.animal + k). */
async function writeToyWordNet(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { texts, labels } = toySentences();
  const lines = texts.map(
    (t, i) =>
      `${String(1000 + i).padStart(8, '0')} ${String(5 + labels[i]!).padStart(2, '0')} n 01 thing 0 000 | ${t}; "a ${t.split(' ').slice(2).join(' ')}"`,
  );
  await writeFile(join(dir, 'data.noun'), `${lines.join('\n')}\n`);
  for (const pos of ['verb', 'adj', 'adv']) await writeFile(join(dir, `data.${pos}`), '');
}

/** The hand-computed feature: mean of the embedding rows of `[CLS] pieces [SEP]`. */
function expectedMean(text: string): number[] {
  const ids = tokenizer.encode(text);
  const out = new Array<number>(model.hidden).fill(0);
  for (const id of ids)
    for (let j = 0; j < model.hidden; j++) out[j]! += model.table[id * model.hidden + j]! / ids.length;
  return out;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'mrl-onnx-'));
  model = await writeTinyOnnxModel(join(root, 'tiny-bert'), WORDS, 16);
  tokenizer = await TextTokenizer.load(model.dir);
  wordnetDir = join(root, 'wordnet');
  await writeToyWordNet(wordnetDir);
});
afterAll(async () => rm(root, { recursive: true, force: true }));

describe('the generated tiny ONNX model', () => {
  it('loads in onnxruntime-node and looks up (masked) embedding rows', async () => {
    const session = await ort.InferenceSession.create(join(model.dir, 'onnx', 'model.onnx'));
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask']);
    expect(session.outputNames).toEqual(['last_hidden_state']);
    const ids = [2, 7, 12, 0];
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, 4]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 0n]), [1, 4]),
    };
    const out = (await session.run(feeds)).last_hidden_state!;
    expect(out.dims).toEqual([1, 4, 16]);
    const data = out.data as Float32Array;
    ids.forEach((id, t) => {
      const row = [...model.table.subarray(id * 16, id * 16 + 16)].map((v) => (t < 3 ? v : 0));
      for (let j = 0; j < 16; j++) expect(data[t * 16 + j]).toBeCloseTo(row[j]!, 6);
    });
    await session.release();
  });
});

describe('OnnxBackboneEncoder', () => {
  it('gives the transformers.js feature-extraction mean, equal to the hand-computed embedding mean (padding ignored)', async () => {
    const encoder = await OnnxBackboneEncoder.load({ modelDir: model.dir, embeddingDim: 8, random: createRandom(0) });
    expect(encoder.backboneDim).toBe(16);
    // Different lengths in one backbone call: the short text is padded and must not change.
    const texts = ['the cat', 'a big red dog eats the small blue fish'];
    await encoder.prefetch(texts);
    const features = encoder.features(texts).arraySync();
    texts.forEach((t, i) => {
      const want = expectedMean(t);
      for (let j = 0; j < 16; j++) expect(features[i]![j]).toBeCloseTo(want[j]!, 5);
    });
    // The projection: z = features W + b.
    const z = encoder.encode(texts, false);
    const want = tf.tidy(() => tf.add(tf.matMul(tf.tensor2d(features), encoder.weight as tf.Tensor2D), encoder.bias));
    expect(z.shape).toEqual([2, 8]);
    const [got, ref] = [z.dataSync(), want.dataSync()];
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(ref[i]!, 5);
    tf.dispose([z, want]);
    encoder.dispose();
  });

  it('gives the first-token state with cls pooling', async () => {
    const encoder = await OnnxBackboneEncoder.load({
      modelDir: model.dir,
      embeddingDim: 4,
      pooling: 'cls',
      random: createRandom(0),
    });
    await encoder.prefetch(['the cat runs']);
    const got = encoder.features(['the cat runs']).dataSync();
    const cls = tokenizer.special.cls;
    for (let j = 0; j < 16; j++) expect(got[j]).toBeCloseTo(model.table[cls * 16 + j]!, 6);
    encoder.dispose();
  });

  it('trains only the Matryoshka projection (and head) with core Trainer; the loss falls and the backbone stays frozen', async () => {
    const encoder = await OnnxBackboneEncoder.load({ modelDir: model.dir, embeddingDim: 16, random: createRandom(1) });
    const { texts, labels } = toySentences();
    const head = new SharedHead(16, ANIMALS.length, createRandom(2));
    const matryoshka = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: 16, dims: [4, 8, 16] });
    const mrl = new MatryoshkaModel(encoder, matryoshka);
    // Only the projection and the head are variables; nothing of the ONNX backbone is.
    expect([...mrl.variables().keys()].filter((n) => n.startsWith('encoder/'))).toEqual([
      'encoder/projection/w',
      'encoder/projection/b',
    ]);
    const before = encoder.weight.dataSync().slice();
    const losses: number[] = [];
    const trainer = new Trainer(mrl, backboneBatches(encoder, texts, labels), {
      steps: 40,
      batchSize: 24,
      seed: 0,
      optimizer: { type: 'adamw', lr: 0.05, weightDecay: 0 },
      onEvent: (e) => {
        if (e.type === 'step') losses.push(e.loss);
      },
    });
    const tensorsBefore = tf.memory().numTensors;
    await trainer.fit();
    expect(tf.memory().numTensors).toBeLessThanOrEqual(tensorsBefore + 8); // optimiser slots only
    expect(encoder.cachedTexts).toBe(texts.length);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.5 * mean(losses.slice(0, 5)));
    expect(encoder.weight.dataSync().some((v, i) => v !== before[i])).toBe(true);
    // Frozen: fresh features from the backbone still equal the hand-computed means.
    encoder.clearCache();
    await encoder.prefetch(texts.slice(0, 3));
    const again = encoder.features(texts.slice(0, 3)).arraySync();
    texts.slice(0, 3).forEach((t, i) => {
      const want = expectedMean(t);
      for (let j = 0; j < 16; j++) expect(again[i]![j]).toBeCloseTo(want[j]!, 5);
    });
    encoder.dispose();
    tf.dispose([...head.variables().values()]);
  });

  it('names the missing model folder, or the missing file inside it', async () => {
    const missing = join(root, 'no-such-model');
    await expect(
      OnnxBackboneEncoder.load({ modelDir: missing, embeddingDim: 8, random: createRandom(0) }),
    ).rejects.toThrow(`no model folder at ${missing}.`);
    const error = await OnnxBackboneEncoder.load({ modelDir: root, embeddingDim: 8, random: createRandom(0) }).catch(
      (e: unknown) => e,
    );
    expect(MrlError.is(error) && error.kind).toBe('missing-file');
    expect((error as Error).message).toBe(`no config.json at ${join(root, 'config.json')}.`);
  });

  it('refuses to encode a text that was not prefetched', async () => {
    const encoder = await OnnxBackboneEncoder.load({ modelDir: model.dir, embeddingDim: 8, random: createRandom(0) });
    expect(() => encoder.encode(['the dog'], false)).toThrow('no backbone features for the text "the dog".');
    encoder.dispose();
  });
});

describe('fitText with a frozen ONNX backbone', () => {
  const context = (name: string) => ({ runDir: join(root, name), seed: 0, resume: false, log: () => {} });

  // A WordNet-format folder of toy glosses keeps these fast and lets classify show learning.
  it('classify trains the projection and reports per-dim top-1 above chance', async () => {
    const report = await fitText(
      {
        task: 'classify',
        backbone: model.dir,
        projectionDim: 16,
        dims: [4, 8, 16],
        steps: 60,
        batchSize: 16,
        lr: 0.05,
        testLimit: 14,
        backend: 'wasm',
        wordnetDir,
      },
      context('classify'),
    );
    const top1 = report.metrics['top1'] as number[];
    expect(top1).toHaveLength(3);
    expect(top1[2]).toBeGreaterThan(0.5); // 4 animals: chance is 0.25
  });

  it('retrieve trains the projection and reports per-dim recall@10', async () => {
    const report = await fitText(
      {
        task: 'retrieve',
        backbone: model.dir,
        projectionDim: 16,
        dims: [8, 16],
        steps: 5,
        batchSize: 16,
        testLimit: 14,
        databaseSize: 72,
        backend: 'wasm',
        wordnetDir,
      },
      context('retrieve'),
    );
    expect(report.metrics['recallAt10']).toHaveLength(2);
  });
});

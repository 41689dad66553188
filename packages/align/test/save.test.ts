import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, encodeSafetensors, initBackend, MrlError, readSafetensors } from '@mrl/core';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDualEncoder } from '../src/di.js';
import type { DualEncoder } from '../src/model.js';
import { encodeImages, encodeTexts, loadAlignRun } from '../src/encode.js';
import { loadAlignModel, saveAlignModel } from '../src/save.js';
import { imageTensor, tokenTensor } from '../src/tensors.js';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'mrl-align-save-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function dual(vision: string, seed: number): DualEncoder {
  return createDualEncoder(
    {
      vision,
      text: 'bert-tiny',
      embeddingDim: 16,
      visionOverrides: vision.startsWith('vit') ? { imageSize: 8, patchSize: 4 } : { embeddingDim: 16 },
      textOverrides: {
        vocabSize: 40,
        embeddingDim: 32,
        numHeads: 2,
        numLayers: 1,
        intermediateSize: 64,
        maxPositions: 8,
      },
    },
    createRandom(seed),
  );
}

function outputs(encoder: DualEncoder): Float32Array[] {
  return tf.tidy(() => {
    const images = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const tokens = {
      ids: tf.tensor2d([2, 7, 9, 3, 2, 11, 3, 0, 2, 5, 6, 3], [3, 4], 'int32'),
      attentionMask: tf.tensor2d([1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1], [3, 4], 'int32'),
    };
    return [
      encoder.encodeImages(images, false).dataSync() as Float32Array,
      encoder.encodeTexts(tokens, false).dataSync() as Float32Array,
    ];
  });
}

describe('saveAlignModel / loadAlignModel', () => {
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...'a b c d e f g h i j'.split(' ')];

  for (const vision of ['resnet-tiny', 'vit-micro']) {
    it(`reloads a ${vision} + bert dual encoder with identical image and caption embeddings`, async () => {
      const tokenizerDir = join(dir, `tok-${vision}`);
      await writeTokenizerFiles(tokenizerDir, wordPieceTokenizerFiles(vocab));
      const encoder = dual(vision, 3);
      // Train-mode passes move the batch-norm statistics off their initial values.
      tf.tidy(() => encoder.encodeImages(tf.randomNormal([4, 8, 8, 3], 0.5, 2, 'float32', 9) as tf.Tensor4D, true));
      const modelDir = join(dir, vision);
      await saveAlignModel(modelDir, encoder, tokenizerDir, [4, 8, 16]);
      const { encoder: loaded, dims } = await loadAlignModel(modelDir);
      expect(dims).toEqual([4, 8, 16]);
      const [a, b] = [outputs(encoder), outputs(loaded)];
      expect(Array.from(b[0]!)).toEqual(Array.from(a[0]!));
      expect(Array.from(b[1]!)).toEqual(Array.from(a[1]!));
      expect(Array.from(b[0]!)).not.toEqual(Array.from(outputs(dual(vision, 4))[0]!)); // not the initial weights
      encoder.dispose();
      loaded.dispose();
    });
  }

  it('encodes new images and texts with the saved towers: prefix, renormalised, quantised', async () => {
    const tokenizerDir = join(dir, 'tok-encode');
    await writeTokenizerFiles(tokenizerDir, wordPieceTokenizerFiles(vocab));
    const encoder = dual('resnet-tiny', 5);
    const runDir = join(dir, 'run-encode');
    await saveAlignModel(join(runDir, 'model'), encoder, tokenizerDir, [4, 8, 16], { image_size: 8, max_length: 6 });
    const model = await loadAlignRun(runDir);
    expect([model.imageSize, model.maxLength]).toEqual([8, 6]);
    const random = createRandom(1);
    const pixels = {
      pixels: Uint8Array.from({ length: 3 * 8 * 8 * 3 }, () => Math.floor(256 * random())),
      count: 3,
      size: 8,
      failed: [],
    };
    // Independent reference: the tower's full output, its first m values divided by their norm.
    const prefix = (full: Float32Array, d: number, m: number) =>
      Array.from({ length: full.length / d }, (_, r) => {
        const row = Array.from(full.subarray(r * d, r * d + m));
        const norm = Math.hypot(...row);
        return row.map((x) => x / norm);
      }).flat();
    const fullImages = tf.tidy(
      () => encoder.encodeImages(imageTensor(pixels, [0, 1, 2]), false).dataSync() as Float32Array,
    );
    const images = await encodeImages(model, pixels, { dim: 8 });
    expect([images.rows, images.width]).toEqual([3, 8]);
    prefix(fullImages, 16, 8).forEach((x, i) => expect(images.data[i]).toBeCloseTo(x, 5));
    const texts = ['a b c', 'd e f g h i j'];
    const ids = texts.map((t) => model.tokenizer.encode(t, false).slice(0, 4));
    const fullTexts = tf.tidy(() => {
      const batch = tokenTensor(ids, 6, model.tokenizer.special);
      return encoder.encodeTexts(batch, false).dataSync() as Float32Array;
    });
    const bits = await encodeTexts(model, texts, { dim: 8, precision: 'ubinary' });
    expect([bits.rows, bits.width]).toEqual([2, 1]);
    const expected = [0, 1].map((r) =>
      prefix(fullTexts, 16, 8)
        .slice(r * 8, r * 8 + 8)
        .reduce((byte, x, k) => byte | (x > 0 ? 0x80 >> k : 0), 0),
    );
    expect(Array.from(bits.data)).toEqual(expected);
    await expect(encodeImages(model, { ...pixels, size: 4 })).rejects.toThrow(
      'the images are 4x4 but the model was trained on 8x8.',
    );
    await expect(encodeTexts(model, texts, { precision: 'int4' as 'int8' })).rejects.toThrow(
      "unknown precision 'int4'.",
    );
    encoder.dispose();
    model.dispose();
  });

  it('names a missing tensor', async () => {
    const modelDir = join(dir, 'resnet-tiny');
    const weights = join(modelDir, 'weights.safetensors');
    const { tensors } = await readSafetensors(weights);
    tensors.delete('text_projection/weight');
    await writeFile(weights, encodeSafetensors(tensors as Map<string, { shape: number[]; data: Float32Array }>));
    const e = await loadAlignModel(modelDir).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(MrlError.is(e) && e.message).toBe(`${weights} has no tensor 'text_projection/weight'.`);
  });
});

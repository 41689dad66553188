import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, encodeSafetensors, initBackend, MrlError, readSafetensors } from '@mrl/core';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDualEncoder } from '../src/di.js';
import type { DualEncoder } from '../src/model.js';
import { loadAlignModel, saveAlignModel } from '../src/save.js';

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

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AdaptorWeights,
  applyAdaptor,
  createRandom,
  initBackend,
  saveAdaptor,
  truncateAndNormalize,
} from '@mrl/core';
import { describe, expect, it } from 'vitest';
import { encode, quantizationRanges, quantizeEmbeddings } from '../src/encode.js';
import { loadHfBert } from '../src/hf-bert.js';
import { loadTextModel } from '../src/tasks/model-file.js';

// Golden codes from sentence-transformers' quantize_embeddings (numpy body), written by
// fixtures/golden_quantize.py.
const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'golden_quantize.json'), 'utf8')) as {
  rows: number;
  dim: number;
  embeddings: number[];
  calibration: number[];
  inside: number[];
  int8: number[];
  uint8: number[];
  binary: number[];
  ubinary: number[];
  int8_calibrated: number[];
  uint8_calibrated: number[];
};
const { rows, dim } = golden;
const embeddings = Float32Array.from(golden.embeddings);

describe('quantizeEmbeddings (sentence-transformers semantics)', () => {
  it('int8 / uint8 with the embeddings as their own calibration', () => {
    for (const precision of ['int8', 'uint8'] as const) {
      const q = quantizeEmbeddings(embeddings, rows, dim, precision);
      expect(q.data).toBeInstanceOf(precision === 'int8' ? Int8Array : Uint8Array);
      expect([...q.data]).toEqual(golden[precision]);
      expect(q.width).toBe(dim);
    }
  });

  it('int8 / uint8 with ranges from a separate calibration set', () => {
    const calibration = Float32Array.from(golden.calibration);
    const ranges = quantizationRanges(calibration, calibration.length / dim, dim);
    const inside = Float32Array.from(golden.inside);
    expect([...quantizeEmbeddings(inside, rows, dim, 'int8', ranges).data]).toEqual(golden.int8_calibrated);
    expect([...quantizeEmbeddings(inside, rows, dim, 'uint8', ranges).data]).toEqual(golden.uint8_calibrated);
  });

  it('saturates values outside the calibration range instead of wrapping', () => {
    const ranges = { starts: Float32Array.from([0, 0]), steps: Float32Array.from([1 / 255, 1 / 255]) };
    const q = quantizeEmbeddings(Float32Array.from([-5, 5]), 1, 2, 'uint8', ranges);
    expect([...q.data]).toEqual([0, 255]);
    expect([...quantizeEmbeddings(Float32Array.from([-5, 5]), 1, 2, 'int8', ranges).data]).toEqual([-128, 127]);
    expect(() => quantizeEmbeddings(Float32Array.from([1, 2, 3]), 1, 3, 'int8', ranges)).toThrow(
      /ranges have 2 dims but the embeddings have 3/,
    );
  });

  it('binary / ubinary: sign bits, first dim in the high bit', () => {
    expect([...quantizeEmbeddings(embeddings, rows, dim, 'ubinary').data]).toEqual(golden.ubinary);
    const b = quantizeEmbeddings(embeddings, rows, dim, 'binary');
    expect(b.data).toBeInstanceOf(Int8Array);
    expect([...b.data]).toEqual(golden.binary);
    expect(b.width).toBe(dim / 8);
    // A dim that is not a multiple of 8 pads each row on its own: 10 dims -> 2 bytes.
    const ten = Float32Array.from([1, -1, 1, -1, -1, -1, -1, 1, 1, 1]);
    expect([...quantizeEmbeddings(ten, 1, 10, 'ubinary').data]).toEqual([0b10100001, 0b11000000]);
  });

  it('float32 passes through and an unknown precision is refused', () => {
    expect(quantizeEmbeddings(embeddings, rows, dim, 'float32').data).toBe(embeddings);
    expect(() => quantizeEmbeddings(embeddings, rows, dim, 'int4' as never)).toThrow(/unknown precision 'int4'/);
  });
});

describe('loadTextModel', () => {
  it('names the run folder without model.json, and one whose model is not a BERT', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'mrl-load-'));
    try {
      await expect(loadTextModel(dir)).rejects.toThrow(/no model\.json in .*mrl-load-/);
      await writeFile(
        join(dir, 'model.json'),
        JSON.stringify({ format: 'mrl-text-model', encoder: { architecture: 'onnx-backbone' } }),
      );
      await expect(loadTextModel(dir)).rejects.toThrow(
        /does not describe a BERT trained by mrl \(architecture 'onnx-backbone'\)/,
      );
      await writeFile(
        join(dir, 'model.json'),
        JSON.stringify({ format: 'mrl-text-model', encoder: { architecture: 'bert' } }),
      );
      await expect(loadTextModel(dir)).rejects.toThrow(/no checkpoint in .*checkpoints/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('encode with a Matryoshka-Adaptor', () => {
  /** Random non-zero adaptor weights (a trained adaptor is just other numbers of these shapes). */
  function randomAdaptor(dim: number, hidden: number, seed: number): AdaptorWeights {
    const random = createRandom(seed);
    const values = (n: number) => Float32Array.from({ length: n }, () => random() - 0.5);
    return {
      config: { dim, hidden, dims: [8, 16, dim] },
      w1: values(dim * hidden),
      b1: values(hidden),
      w2: values(hidden * dim),
      b2: values(dim),
    };
  }

  it('equals encoding at full dim, applying the adaptor by hand, then keeping and renormalising the prefix', async () => {
    await initBackend('wasm');
    const { encoder, tokenizer } = await loadHfBert(join(import.meta.dirname, 'fixtures', 'hf-bert'), {
      pooling: 'mean',
    });
    const model = { encoder, tokenizer, maxLength: 24, dims: [8, 16, 32], dispose: () => encoder.dispose() };
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'mrl-encode-adaptor-'));
    try {
      const texts = ['the cat sat on the mat', 'a big red bird sang in the tree', 'fish swim'];
      const d = encoder.embeddingDim;
      const weights = randomAdaptor(d, 12, 5);
      const full = await encode(model, texts, { dim: d });
      const byHand = truncateAndNormalize(
        applyAdaptor(weights, { data: full.data as Float32Array, rows: 3, dim: d }).data,
        3,
        d,
        8,
      );
      const plain = await encode(model, texts, { dim: 8 });
      const adapted = await encode(model, texts, { dim: 8, adaptor: weights });
      expect(adapted.rows).toBe(3);
      expect(adapted.dim).toBe(8);
      for (let i = 0; i < byHand.length; i++) expect(adapted.data[i]).toBeCloseTo(byHand[i]!, 5);
      // The adaptor changed the vectors (the comparison above is not plain encoding twice).
      expect(Math.max(...Array.from(plain.data, (v, i) => Math.abs(v - byHand[i]!)))).toBeGreaterThan(0.05);
      // An adaptor folder (as mrl-cli adapt writes it) gives the same vectors.
      await saveAdaptor(dir, weights);
      const fromFolder = await encode(model, texts, { dim: 8, adaptor: dir });
      expect([...fromFolder.data]).toEqual([...adapted.data]);
      // Quantisation applies to the adapted prefix.
      const bits = await encode(model, texts, { dim: 8, adaptor: weights, precision: 'ubinary' });
      expect([...bits.data]).toEqual([...quantizeEmbeddings(byHand, 3, 8, 'ubinary').data]);
      await expect(encode(model, texts, { adaptor: randomAdaptor(16, 4, 1) })).rejects.toThrow(
        /the text embeddings have 32 dims but the adaptor maps 16-dim embeddings/,
      );
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

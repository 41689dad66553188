import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quantizationRanges, quantizeEmbeddings } from '../src/encode.js';
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

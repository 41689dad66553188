import { describe, expect, it } from 'vitest';
import { normalisedPrefix, pairedRecall, zeroShotAccuracy } from '../src/evaluate.js';
import { expectClose } from './helpers.js';

const emb = (rows: number[][]) => ({ data: Float32Array.from(rows.flat()), rows: rows.length, dim: rows[0]!.length });

describe('pairedRecall', () => {
  it('ranks each positive among all candidates, per prefix', () => {
    // On the first dim alone everything ties (all positive); on both dims image i matches text i
    // except image 2, whose nearest text is text 0.
    const images = emb([
      [1, 1],
      [1, -1],
      [1, 0.9],
    ]);
    const texts = emb([
      [1, 1],
      [1, -1],
      [1, -0.2],
    ]);
    const [d1, d2] = pairedRecall(images, texts, [1, 2], [1, 2, 3]);
    // Ties count against the query: at dim 1 every positive has 2 equal competitors.
    expect(d1!.imageToText).toEqual({ 1: 0, 2: 0, 3: 1 });
    expect(d2!.imageToText[1]).toBeCloseTo(2 / 3, 6);
    expect(d2!.imageToText[2]).toBe(1);
    // Text 2 [1, -0.2]: image 2 [1, 0.9] scores below image 1 [1, -1]? cos(t2, i1) = 0.832, cos(t2, i2) = 0.552.
    expect(d2!.textToImage[1]).toBeCloseTo(2 / 3, 6);
    // mAP@10 with one relevant item: 1 / rank. Dim 1: every pair at rank 3; dim 2: ranks 1, 1, 2 both ways.
    expect(d1!.map10.imageToText).toBeCloseTo(1 / 3, 6);
    expect(d2!.map10.imageToText).toBeCloseTo((1 + 1 + 1 / 2) / 3, 6);
    expect(d2!.map10.textToImage).toBeCloseTo((1 + 1 + 1 / 2) / 3, 6);
  });

  it('gives mAP@10 nothing for a pair ranked below 10', () => {
    // Twelve identical pairs: each positive ties with 11 others, so it ranks 12th.
    const same = emb(Array.from({ length: 12 }, () => [1, 2]));
    const [row] = pairedRecall(same, same, [2]);
    expect(row!.map10).toEqual({ imageToText: 0, textToImage: 0 });
    expect(row!.imageToText[10]).toBe(0);
  });

  it('normalises each prefix on its own', () => {
    expectClose(normalisedPrefix(emb([[3, 4, 100]]), 2), [0.6, 0.8], 1e-6);
    expect(() => normalisedPrefix(emb([[1, 2]]), 3)).toThrow('prefix 3 is outside [1, 2].');
  });

  it('rejects unpaired embeddings', () => {
    expect(() => pairedRecall(emb([[1]]), emb([[1], [2]]), [1])).toThrow(
      '1 image but 2 text embeddings; they must pair up.',
    );
  });
});

describe('zeroShotAccuracy', () => {
  it('picks the nearest prompt', () => {
    const prompts = emb([
      [1, 0],
      [0, 1],
    ]);
    const images = emb([
      [2, 0.1],
      [0.1, 3],
      [1, 1.2],
    ]);
    expect(zeroShotAccuracy(images, Int32Array.from([0, 1, 0]), prompts, [2])).toEqual([2 / 3]);
  });
});

import { describe, expect, it } from 'vitest';
import { normalisedPrefix, pairedRecall, zeroShotAccuracy } from '../src/evaluate.js';
import { expectClose, seeded } from './helpers.js';

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

  it('with a gallery, ranks each test pair among every caption and image, gallery included', () => {
    // 3 test pairs as queries, 5 gallery pairs as more candidates; random 6-dim embeddings.
    const random = seeded(7);
    const rows = (n: number) => Array.from({ length: n }, () => Array.from({ length: 6 }, () => random() - 0.5));
    const [testImages, testTexts, galleryImages, galleryTexts] = [rows(3), rows(3), rows(5), rows(5)];
    const ks = [1, 2, 3, 4, 5, 6, 7, 8];
    // The reference: rank of pair i among all 8 items, by cosine of each m-prefix in float64.
    const cosine = (a: number[], b: number[], m: number) => {
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let k = 0; k < m; k++) {
        ab += a[k]! * b[k]!;
        aa += a[k]! * a[k]!;
        bb += b[k]! * b[k]!;
      }
      return ab / Math.sqrt(aa * bb);
    };
    const reference = (queries: number[][], own: number[][], all: number[][], m: number) =>
      queries.map((q, i) => all.filter((c, j) => j !== i && cosine(q, c, m) >= cosine(q, own[i]!, m)).length);
    const rows3 = pairedRecall(emb(testImages), emb(testTexts), [2, 6], ks, {
      images: emb(galleryImages),
      texts: emb(galleryTexts),
    });
    for (const [j, m] of [2, 6].entries()) {
      const i2t = reference(testImages, testTexts, [...testTexts, ...galleryTexts], m);
      const t2i = reference(testTexts, testImages, [...testImages, ...galleryImages], m);
      // Every rank from 0 to 7 is possible only when all 8 candidates are counted.
      for (const k of ks) {
        expect(rows3[j]!.imageToText[k]).toBeCloseTo(i2t.filter((r) => r < k).length / 3, 9);
        expect(rows3[j]!.textToImage[k]).toBeCloseTo(t2i.filter((r) => r < k).length / 3, 9);
      }
      expect(rows3[j]!.map10.imageToText).toBeCloseTo(i2t.reduce((s, r) => s + 1 / (r + 1), 0) / 3, 6);
      expect(rows3[j]!.map10.textToImage).toBeCloseTo(t2i.reduce((s, r) => s + 1 / (r + 1), 0) / 3, 6);
    }
  });

  it('with a gallery, its first and last items are candidates and its pairs are never queries', () => {
    // Two test pairs that find each other at rank 1 on their own.
    const images = emb([
      [1, 0],
      [0, 1],
    ]);
    const texts = emb([
      [1, 0.1],
      [0.1, 1],
    ]);
    expect(pairedRecall(images, texts, [2], [1])[0]!.imageToText[1]).toBe(1);
    // The last gallery caption equals test caption 0 (a tie counts against image 0); the first
    // gallery image is closer to test caption 1 than its own image. Only the two test pairs are
    // queries: every recall is a count over 2.
    const gallery = {
      images: emb([
        [0.1, 1],
        [-1, 0],
        [0, -1],
      ]),
      texts: emb([
        [-1, 0],
        [0, -1],
        [1, 0.1],
      ]),
    };
    const [row] = pairedRecall(images, texts, [2], [1, 2, 3, 5], gallery);
    expect(row!.imageToText).toEqual({ 1: 0.5, 2: 1, 3: 1, 5: 1 });
    expect(row!.textToImage).toEqual({ 1: 0.5, 2: 1, 3: 1, 5: 1 });
    expect(row!.map10.imageToText).toBeCloseTo((1 / 2 + 1) / 2, 9);
  });

  it('rejects a gallery that does not pair up or has another width', () => {
    const one = emb([[1, 0]]);
    expect(() =>
      pairedRecall(one, one, [1], [1], {
        images: emb([[1, 0]]),
        texts: emb([
          [1, 0],
          [0, 1],
        ]),
      }),
    ).toThrow('the retrieval gallery has 1 image but 2 text embeddings; they must pair up.');
    expect(() => pairedRecall(one, one, [1], [1], { images: emb([[1, 0, 0]]), texts: emb([[1, 0, 0]]) })).toThrow(
      "the retrieval gallery's embeddings are 3 (images) and 3 (texts) wide, the queries' 2 and 2; embed both with the same model.",
    );
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

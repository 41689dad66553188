import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitText } from '../src/fit.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-fit-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const tiny = { embeddingDim: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, maxPositions: 16, dropout: 0 };
const context = (name: string) => ({ runDir: join(dir, name), seed: 0, resume: false, log: () => {} });

describe('fitText', () => {
  it('mlm learns a tiny repetitive corpus at every nesting dim', async () => {
    const file = join(dir, 'corpus.txt');
    const lines = Array.from(
      { length: 400 },
      (_, i) => ['the cat sat on the mat', 'a dog ran to the park', 'my hat is red and blue'][i % 3]!,
    );
    await writeFile(file, `${lines.join('\n')}\n`);
    const report = await fitText(
      {
        task: 'mlm',
        corpora: [],
        textFiles: [file],
        vocabSize: 40,
        modelOverrides: { ...tiny, embeddingDim: 32, intermediateSize: 64 },
        steps: 200,
        lr: 1e-2,
        warmupSteps: 20,
        dims: [8, 16, 32],
        batchSize: 16,
        trainLimit: 300,
        testLimit: 100,
        backend: 'wasm',
        maxLength: 16,
      },
      context('mlm'),
    );
    const accuracy = report.metrics['accuracy'] as number[];
    expect(accuracy.length).toBe(3);
    // 15 distinct words: chance is under 10%; the sentences are fully predictable from context.
    expect(accuracy[2]!).toBeGreaterThan(0.5);
    expect(accuracy[0]!).toBeGreaterThan(0.3);
    expect(report.table).toContain('masked-token acc %');
  });

  it('a resumed run keeps its own WordPiece vocabulary, even when the texts changed', async () => {
    const file = join(dir, 'resume-corpus.txt');
    const sentences = ['the cat sat on the mat', 'a dog ran to the park', 'my hat is red and blue'];
    await writeFile(file, `${Array.from({ length: 60 }, (_, i) => sentences[i % 3]!).join('\n')}\n`);
    const options = {
      task: 'mlm' as const,
      corpora: [],
      textFiles: [file],
      vocabSize: 40,
      modelOverrides: tiny,
      steps: 2,
      dims: [8, 16],
      batchSize: 8,
      trainLimit: 50,
      testLimit: 10,
      backend: 'wasm',
      maxLength: 16,
    };
    await fitText(options, context('resume'));
    const tokenizerFile = join(dir, 'resume', 'tokenizer', 'tokenizer.json');
    const before = await readFile(tokenizerFile, 'utf8');
    // Other words now (same letters): a vocabulary trained again would differ.
    const other = ['rats and bats nap', 'a red mat on a dark park', 'the toy boat is blue'];
    await writeFile(file, `${Array.from({ length: 60 }, (_, i) => other[i % 3]!).join('\n')}\n`);
    const lines: string[] = [];
    await fitText({ ...options, steps: 4 }, { ...context('resume'), resume: true, log: (l: string) => lines.push(l) });
    expect(await readFile(tokenizerFile, 'utf8')).toBe(before);
    expect(lines.some((l) => l.includes("resuming with the run's own tokenizer"))).toBe(true);
    expect(lines.some((l) => l.includes('trained a WordPiece vocabulary'))).toBe(false);
  });

  it('classify reports per-dim top-1 over the 45 WordNet classes', async () => {
    const report = await fitText(
      {
        task: 'classify',
        vocabSize: 300,
        modelOverrides: tiny,
        steps: 3,
        trainLimit: 200,
        testLimit: 50,
        backend: 'wasm',
        dims: [8, 16],
        maxLength: 16,
      },
      context('classify'),
    );
    expect(report.title).toContain('45 lexicographer classes');
    const top1 = report.metrics['top1'] as number[];
    expect(top1.length).toBe(2);
    top1.forEach((v) => expect(v).toBeGreaterThanOrEqual(0));
  });

  it('retrieve reports per-dim recall@10 and rejects an unknown task', async () => {
    const report = await fitText(
      {
        task: 'retrieve',
        vocabSize: 300,
        modelOverrides: tiny,
        steps: 3,
        trainLimit: 200,
        testLimit: 50,
        databaseSize: 200,
        backend: 'wasm',
        dims: [8, 16],
        maxLength: 16,
      },
      context('retrieve'),
    );
    const recall = report.metrics['recallAt10'] as number[];
    expect(recall.length).toBe(2);
    // 50 queries over 200 glosses: recall@10 is at least random (5%) only by chance; check the range.
    recall.forEach((v) => expect(v).toBeGreaterThanOrEqual(0) && expect(v).toBeLessThanOrEqual(1));
    expect(report.table).toContain('recall@10 %');
    await expect(fitText({ task: 'translate' as 'mlm' }, context('bad'))).rejects.toThrow(
      /unknown text task 'translate'/,
    );
  });
});

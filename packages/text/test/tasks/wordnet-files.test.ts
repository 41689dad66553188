import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClassificationData } from '../../src/data/classification.js';
import { encode } from '../../src/encode.js';
import { fitText } from '../../src/fit.js';
import { loadTextModel } from '../../src/tasks/model-file.js';
import { writeWordNetFiles } from '../../src/wordnet.js';

// Real data from Debian's wordnet-base, written as a user's files would be.
const LEXNAMES = ['noun.animal', 'noun.food', 'noun.person', 'verb.motion'];
const tiny = { embeddingDim: 32, numLayers: 1, numHeads: 2, intermediateSize: 64, maxPositions: 32, dropout: 0 };
const budget = {
  vocabSize: 1000,
  modelOverrides: tiny,
  lr: 3e-3,
  warmupSteps: 10,
  batchSize: 32,
  dims: [8, 16, 32],
  maxLength: 24,
};

let dir: string;
let files: Awaited<ReturnType<typeof writeWordNetFiles>>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-text-files-'));
  files = await writeWordNetFiles(join(dir, 'data'), { lexnames: LEXNAMES, limit: 1500 });
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const context = (name: string) => ({ runDir: join(dir, name), seed: 0, resume: false, log: () => {} });

describe('fitText on files written from WordNet', () => {
  it('writes lexname classification and example -> gloss triplet JSONL', async () => {
    expect(files.classes).toBe(4);
    expect(files.records).toBe(1500);
    const first = JSON.parse((await readFile(files.pairs, 'utf8')).split('\n')[0]!) as Record<string, string>;
    expect(Object.keys(first)).toEqual(['anchor', 'positive', 'negative']);
    expect(first['negative']).not.toBe(first['positive']);
  });

  it('classify: beats the majority class at every dim, beside FF / SVD / truncation / untrained, and saves labels.json', async () => {
    const runDir = join(dir, 'classify');
    const report = await fitText(
      {
        task: 'classify',
        trainFile: files.classification,
        steps: 80,
        compare: ['ff', 'svd', 'rand', 'untrained'],
        ...budget,
      },
      context('classify'),
    );
    expect(report.title).toContain(files.classification);
    for (const header of [
      'MRL top-1 %',
      'FF top-1 %',
      'trunc top-1 %',
      'MRL 1-NN %',
      'FF 1-NN %',
      'SVD 1-NN %',
      'untrained 1-NN %',
    ])
      expect(report.table).toContain(header);
    // Untrained is the initial encoder: a run that trains 12 steps instead of 80 scores it the same.
    const untrained = report.metrics['untrained'] as number[];
    expect(untrained.length).toBe(3);
    const shortRun = await fitText(
      { task: 'classify', trainFile: files.classification, steps: 12, compare: ['untrained'], ...budget },
      context('classify-short'),
    );
    expect(shortRun.metrics['untrained']).toEqual(untrained);
    expect(shortRun.runTable?.series.map((s) => s.label)).toEqual(['MRL-E', 'Untrained']);
    // Training moved the embedding away from the initial one: the full-dim 1-NN differs.
    expect((report.metrics['nnTop1'] as number[])[2]).not.toBe(untrained[2]);
    const majority = report.metrics['majority'] as number;
    expect(majority).toBeGreaterThan(0.25);
    expect(majority).toBeLessThan(0.6);
    for (const key of ['top1', 'nnTop1'] as const) {
      const values = report.metrics[key] as number[];
      expect(values.length).toBe(3);
      for (const v of values) expect(v).toBeGreaterThan(majority + 0.15);
    }
    const ff = report.metrics['ff'] as Record<string, { top1: number[] }>;
    expect(Object.keys(ff).sort()).toEqual(['16', '32', '8']);
    expect((report.metrics['svd'] as number[]).length).toBe(3);
    const labels = JSON.parse(await readFile(join(runDir, 'labels.json'), 'utf8')) as { labels: string[] };
    expect(labels.labels).toEqual([...LEXNAMES].sort());

    // The saved model reloads and encodes: nearest class centroid on its 8-dim prefix beats the majority class.
    const model = await loadTextModel(runDir);
    expect(model.labels?.names).toEqual(labels.labels);
    const data = await loadClassificationData({ trainFile: files.classification, seed: 0 });
    const trainZ = await encode(
      model,
      data.train.examples.map((e) => e.text),
      { dim: 8 },
    );
    const testZ = await encode(
      model,
      data.test.examples.map((e) => e.text),
      { dim: 8 },
    );
    const row = (z: typeof trainZ, i: number) => [...z.data.subarray(i * 8, (i + 1) * 8)] as number[];
    expect(Math.hypot(...row(testZ, 0))).toBeCloseTo(1, 5);
    const centroids = labels.labels.map(() => new Array<number>(8).fill(0));
    data.trainLabels.forEach((c, i) => row(trainZ, i).forEach((x, j) => (centroids[c]![j]! += x)));
    let correct = 0;
    data.testLabels.forEach((c, i) => {
      const z = row(testZ, i);
      const scores = centroids.map((k) => k.reduce((s, x, j) => s + x * z[j]!, 0) / Math.hypot(...k));
      if (scores.indexOf(Math.max(...scores)) === c) correct += 1;
    });
    expect(correct / data.test.size).toBeGreaterThan(majority + 0.15);
    // The 8-dim prefix is the renormalised start of the full embedding; binary packs 8 dims in a byte.
    const full = await encode(model, ['a small dog'], { normalize: false });
    const eight = await encode(model, ['a small dog'], { dim: 8 });
    const head = [...full.data.subarray(0, 8)] as number[];
    head.forEach((x, j) => expect(eight.data[j]!).toBeCloseTo(x / Math.hypot(...head), 5));
    const bits = await encode(model, ['a small dog', 'to run'], { dim: 8, precision: 'ubinary' });
    expect(bits.width).toBe(1);
    expect(bits.data[0]).toBe(head.reduce((byte, x, j) => byte | (x > 0 ? 0x80 >> j : 0), 0));
    model.dispose();
  }, 240_000);

  it('pairs: example -> gloss with hard negatives beats chance at every dim, beside SVD', async () => {
    const report = await fitText(
      { task: 'pairs', trainFile: files.pairs, steps: 100, compare: ['svd'], ...budget },
      context('pairs'),
    );
    expect(report.title).toContain(files.pairs);
    expect(report.title).toContain('hard negatives');
    expect(report.table).toContain('SVD R@10 %');
    const candidates = report.metrics['candidates'] as number;
    const recall = report.metrics['recallAt10'] as number[];
    expect(recall.length).toBe(3);
    // Chance recall@10 is 10 / candidates (about 1.6%). Word overlap alone gives an untrained model
    // some recall (after 1 step: 3.6% at d = 8), so the bar of 3x chance (4.9%) needs training (6.5%).
    for (const r of recall) expect(r).toBeGreaterThan((3 * 10) / candidates);
    await access(join(dir, 'pairs', 'model.json'));
  }, 120_000);

  it('pairs: scores each test anchor against a whole candidates file, beside untrained', async () => {
    // Every gloss of the classification file and every positive of the pairs file (the limit cuts
    // the two at different synsets), with one gloss repeated: both copies are relevant.
    const pairs = (await readFile(files.pairs, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { positive: string });
    const glosses = (await readFile(files.classification, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { text: string }).text);
    const texts = [...new Set([...glosses, ...pairs.map((p) => p.positive)])];
    const candidatesFile = join(dir, 'candidates.jsonl');
    await writeFile(candidatesFile, [...texts, texts[0]!].map((text) => JSON.stringify({ text })).join('\n'));
    const report = await fitText(
      { task: 'pairs', trainFile: files.pairs, candidatesFile, steps: 100, compare: ['untrained'], ...budget },
      context('pairs-candidates'),
    );
    expect(report.metrics['candidates']).toBe(texts.length + 1);
    expect(report.title).toContain(`over ${texts.length + 1} candidates`);
    expect(report.runTable?.task).toContain(`every text of ${candidatesFile}`);
    expect(report.runTable?.metrics.map((m) => m.key)).toEqual(['recall1', 'recall10', 'map10', 'ndcg10']);
    const recall = report.metrics['recallAt10'] as number[];
    const map10 = report.metrics['map10'] as number[];
    const untrained = report.metrics['untrained'] as { r10: number[]; map10: number[] };
    expect(map10.length).toBe(3);
    expect(untrained.r10.length).toBe(3);
    // mAP@10 with one relevant text (nearly always) lies between recall@1 and recall@10.
    const recall1 = report.metrics['recallAt1'] as number[];
    map10.forEach((m, j) => {
      expect(m).toBeGreaterThanOrEqual(recall1[j]! - 1e-9);
      expect(m).toBeLessThanOrEqual(recall[j]! + 1e-9);
    });
    // Chance recall@10 is 10 / candidates (about 0.2%); training lifts the full dim above the
    // initial encoder's.
    for (const r of recall) expect(r).toBeGreaterThan((5 * 10) / texts.length);
    expect(recall[2]!).toBeGreaterThan(untrained.r10[2]!);
  }, 120_000);

  it('refuses a candidates file that lacks a test positive, naming the line', async () => {
    // With a limit the classification file stops at other synsets than the pairs file.
    await expect(
      fitText(
        { task: 'pairs', trainFile: files.pairs, candidatesFile: files.classification, steps: 1, ...budget },
        context('pairs-missing'),
      ),
    ).rejects.toThrow(/the positive of test line \d+ \(".*"\) is not a text of .*lexnames\.jsonl\./);
  });

  it('refuses a pairs run without a file, and an unknown baseline', async () => {
    await expect(fitText({ task: 'pairs' }, context('none'))).rejects.toThrow(/the pairs task needs a trainFile/);
    await expect(
      fitText({ task: 'classify', trainFile: files.classification, compare: ['pca' as never] }, context('none')),
    ).rejects.toThrow(/unknown baseline 'pca'\./);
  });
});

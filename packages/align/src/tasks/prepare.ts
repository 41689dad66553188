import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { MrlError, type RunContext } from '@mrl/core';
import { TextTokenizer, trainWordPiece, wordPieceTokenizerFiles, writeTokenizerFiles } from '@mrl/text';
import {
  decodePairs,
  dropFailed,
  readOpenclipart,
  readPairsJsonl,
  readSidecarFolder,
  splitPairs,
  type PairRecord,
  type PixelSet,
} from '../data.js';
import type { AlignFitOptions } from '../fit.js';

/** The pairs of an align run, decoded and tokenised once for every model of the run. */
export interface Prepared {
  train: PairRecord[];
  test: PairRecord[];
  trainPixels: PixelSet;
  testPixels: PixelSet;
  tokenizer: TextTokenizer;
  trainIds: number[][];
  testIds: number[][];
}

async function loadPairs(options: AlignFitOptions): Promise<{ name: string; pairs: PairRecord[] }> {
  const data = options.data ?? 'openclipart';
  if (data === 'openclipart')
    return {
      name: 'openclipart',
      pairs: await readOpenclipart(
        options.dataDir,
        options.trainLimit === undefined ? {} : { limit: options.trainLimit },
      ),
    };
  const path = resolve(data);
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `no pairs at ${path}.`,
      'Pass --data openclipart, a .jsonl pairs file or a folder of images with sidecar .txt captions.',
      { cause },
    );
  }
  const pairs = isDir ? await readSidecarFolder(path) : await readPairsJsonl(path);
  return { name: basename(path), pairs: options.trainLimit === undefined ? pairs : pairs.slice(0, options.trainLimit) };
}

/**
 * Reads the pairs, splits them by path hash, decodes (or reads from the cache) the images, trains
 * the WordPiece vocabulary on the training captions (written to `<runDir>/tokenizer`) and
 * tokenises every caption.
 */
export async function prepare(options: AlignFitOptions, context: RunContext): Promise<Prepared & { dataName: string }> {
  const t0 = performance.now();
  const { name, pairs } = await loadPairs(options);
  const { train, test } = splitPairs(pairs, options.testFraction ?? 0.1);
  if (train.length < 2 || test.length < 2) {
    throw new MrlError(
      'invalid-argument',
      `${pairs.length} pairs give ${train.length} training and ${test.length} test pairs; both need at least 2.`,
      'Use more pairs or change testFraction.',
    );
  }
  context.log(
    `data: ${name}, ${train.length} training / ${test.length} test pairs (split by path hash) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const size = options.imageSize ?? 24;
  const cacheDir = options.cacheDir ?? join(homedir(), '.cache', 'mrl', 'align');
  const decode = async (split: PairRecord[], which: string): Promise<PixelSet> => {
    const t = performance.now();
    const set = await decodePairs(split, size, {
      ...(cacheDir === '' ? {} : { cacheFile: join(cacheDir, `${name}-${which}-${size}px.bin`) }),
      onProgress: (done, total) => {
        if (done === total || done % 1000 === 0) context.log(`decoding ${which} images: ${done}/${total}`);
      },
      onSkip: (path, why) => context.log(`cannot decode ${path}: ${why}`),
    });
    context.log(
      `${which} images: ${set.count} x ${size}x${size} RGB in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    return set;
  };
  const trainSet = dropFailed(train, await decode(train, 'train'));
  const testSet = dropFailed(test, await decode(test, 'test'));
  const dropped = train.length + test.length - trainSet.pairs.length - testSet.pairs.length;
  if (dropped > 0) context.log(`dropped ${dropped} pairs whose image could not be decoded`);
  const tokenizerDir = join(context.runDir, 'tokenizer');
  const vocab = await trainWordPiece(
    trainSet.pairs.map((p) => p.caption),
    { vocabSize: options.vocabSize ?? 2000 },
  );
  await writeTokenizerFiles(tokenizerDir, wordPieceTokenizerFiles(vocab));
  const tokenizer = await TextTokenizer.load(tokenizerDir);
  context.log(
    `tokenizer: WordPiece, ${tokenizer.vocabSize} pieces trained on the training captions -> ${tokenizerDir}`,
  );
  const maxLength = options.maxLength ?? 24;
  const ids = (p: PairRecord): number[] => tokenizer.encode(p.caption, false).slice(0, maxLength - 2);
  return {
    dataName: name,
    train: trainSet.pairs,
    test: testSet.pairs,
    trainPixels: trainSet.pixels,
    testPixels: testSet.pixels,
    tokenizer,
    trainIds: trainSet.pairs.map(ids),
    testIds: testSet.pairs.map(ids),
  };
}

import { MrlError } from '@mrl/core';
import { readRecords } from './records.js';
import { checkTestFraction, hashSplit } from './split.js';
import { ArraySource, textOf, type TextFieldOptions } from './source.js';

/** An (anchor, positive[, negative]) example: the positive should rank above every other text. */
export interface TextPair {
  anchor: string;
  positive: string;
  /** A hard negative: close to the anchor, yet wrong. */
  negative?: string;
  line: number;
}

export interface PairFileOptions extends TextFieldOptions {
  /** Field of the query / anchor text (default `anchor`). */
  anchorField?: string;
  /** Field of the matching text (default `positive`). */
  positiveField?: string;
  /**
   * Field of a hard negative. Default: `negative` when the first record has it (then every
   * record must). Set explicitly, every record must have it.
   */
  negativeField?: string;
}

/**
 * Reads a pairs or triplets file (JSONL, CSV or TSV: anchor, positive[, negative]) into a source,
 * naming the file and line of any bad record.
 *
 * @example
 * ```ts
 * const pairs = await readPairFile('qa.jsonl', { anchorField: 'question', positiveField: 'answer' });
 * ```
 */
export async function readPairFile(path: string, options: PairFileOptions = {}): Promise<ArraySource<TextPair>> {
  const anchorField = options.anchorField ?? 'anchor';
  const positiveField = options.positiveField ?? 'positive';
  let negativeField = options.negativeField;
  const pairs: TextPair[] = [];
  for await (const { fields, line } of readRecords(path, options)) {
    const where = { path, line };
    if (pairs.length === 0 && negativeField === undefined && fields['negative'] !== undefined)
      negativeField = 'negative';
    const pair: TextPair = {
      anchor: textOf(fields, anchorField, where, { ...options, option: 'anchorField' }),
      positive: textOf(fields, positiveField, where, { ...options, option: 'positiveField' }),
      line,
    };
    if (negativeField !== undefined)
      pair.negative = textOf(fields, negativeField, where, { ...options, option: 'negativeField' });
    pairs.push(pair);
  }
  if (pairs.length === 0) {
    throw new MrlError(
      'corrupt-file',
      `${path} has no records.`,
      `Give one pair a line, e.g. {"${anchorField}": "a question", "${positiveField}": "its answer"}.`,
    );
  }
  return new ArraySource(path, pairs);
}

/**
 * Every text of a candidates file (JSONL, CSV, TSV or TXT; field `textField`, default `text`), in
 * file order: the collection a pairs run scores its test anchors against.
 *
 * @example
 * ```ts
 * const glosses = await readCandidateTexts('wordnet/lexnames.jsonl'); // 117,659 glosses
 * ```
 */
export async function readCandidateTexts(
  path: string,
  options: TextFieldOptions & { textField?: string } = {},
): Promise<string[]> {
  const field = options.textField ?? 'text';
  const texts: string[] = [];
  for await (const { fields, line } of readRecords(path, options))
    texts.push(textOf(fields, field, { path, line }, { ...options, option: 'textField' }));
  if (texts.length === 0) {
    throw new MrlError(
      'corrupt-file',
      `candidates file ${path} has no records.`,
      `Give one candidate text a line, e.g. {"${field}": "a document"}.`,
    );
  }
  return texts;
}

export interface PairData {
  train: ArraySource<TextPair>;
  test: ArraySource<TextPair>;
  /** Whether the pairs carry a hard negative. */
  hasNegatives: boolean;
  testName: string;
}

export interface PairDataOptions extends PairFileOptions {
  trainFile: string;
  testFile?: string;
  /** Share held out when there is no test file, split by a hash of the anchor (default 0.2). */
  testFraction?: number;
  seed?: number;
}

/** Reads and checks training and test pairs (a test file, or a hash split of the anchors). */
export async function loadPairData(options: PairDataOptions): Promise<PairData> {
  const all = await readPairFile(options.trainFile, options);
  const hasNegatives = all.examples[0]!.negative !== undefined;
  let train: TextPair[];
  let test: TextPair[];
  let testName: string;
  if (options.testFile === undefined) {
    const fraction = options.testFraction ?? 0.2;
    checkTestFraction(fraction);
    const split = hashSplit(all.size, (i) => all.examples[i]!.anchor, fraction, options.seed ?? 0);
    train = split.train.map((i) => all.examples[i]!);
    test = split.test.map((i) => all.examples[i]!);
    testName = `hash split of ${options.trainFile} (${Math.round(fraction * 100)}%)`;
  } else {
    train = [...all.examples];
    test = [...(await readPairFile(options.testFile, options)).examples];
    testName = options.testFile;
  }
  if (train.length < 2) {
    throw new MrlError(
      'corrupt-file',
      `${options.trainFile} gives ${train.length} training pair(s); in-batch negatives need at least 2.`,
      'Add pairs, or lower testFraction.',
    );
  }
  if (test.length === 0) {
    throw new MrlError(
      'invalid-argument',
      `the hash split of ${options.trainFile} (${all.size} pairs) left no test pairs.`,
      'Raise testFraction, add pairs, or give a separate test file.',
    );
  }
  return {
    train: new ArraySource(options.trainFile, train),
    test: new ArraySource(testName, test),
    hasNegatives,
    testName,
  };
}

import { majorityClass, MrlError } from '@mrl/core';
import { LabelMap } from './labels.js';
import { readRecords } from './records.js';
import { checkTestFraction, hashSplit, hashString } from './split.js';
import { ArraySource, labelOf, textOf, type TextFieldOptions } from './source.js';

/** One classification example and the line of its file. */
export interface LabelledText {
  text: string;
  label: string;
  line: number;
}

export interface ClassificationFileOptions extends TextFieldOptions {
  /** Field holding the text (default `text`; a CSV/TSV header name). */
  textField?: string;
  /** Field holding the class (default `label`): a string, number or boolean. */
  labelField?: string;
}

/**
 * Reads a JSONL, CSV or TSV classification file (text and class per record) into a source,
 * checking every record: the file and line are named for a missing field, an empty text or class,
 * bad UTF-8 or an over-long line.
 *
 * @example
 * ```ts
 * const source = await readClassificationFile('reviews.csv', { textField: 'review', labelField: 'stars' });
 * ```
 */
export async function readClassificationFile(
  path: string,
  options: ClassificationFileOptions = {},
): Promise<ArraySource<LabelledText>> {
  const textField = options.textField ?? 'text';
  const labelField = options.labelField ?? 'label';
  const examples: LabelledText[] = [];
  for await (const { fields, line } of readRecords(path, options)) {
    const where = { path, line };
    examples.push({ text: textOf(fields, textField, where, options), label: labelOf(fields, labelField, where), line });
  }
  if (examples.length === 0) {
    throw new MrlError(
      'corrupt-file',
      `${path} has no records.`,
      'Give at least two classes with examples of each (JSONL: one {"text": ..., "label": ...} a line; CSV/TSV: a header row, then rows).',
    );
  }
  return new ArraySource(path, examples);
}

/** Training and test examples with their class ids. */
export interface ClassificationData {
  train: ArraySource<LabelledText>;
  test: ArraySource<LabelledText>;
  labels: LabelMap;
  trainLabels: Int32Array;
  testLabels: Int32Array;
  /** Test accuracy of always answering the most frequent training class. */
  majority: number;
  /** Where the test examples came from: the test file, or `hash split of <train file>`. */
  testName: string;
}

export interface ClassificationDataOptions extends ClassificationFileOptions {
  trainFile: string;
  /** A separate test file (same fields); default: a hash split of `trainFile`. */
  testFile?: string;
  /** Share of `trainFile` held out when there is no test file (default 0.2). */
  testFraction?: number;
  seed?: number;
  /** A label map to keep (a resumed run's labels.json): every training label must be in it and every class must have examples. */
  labels?: LabelMap;
}

function classCounts(examples: readonly LabelledText[]): Map<string, LabelledText[]> {
  const byClass = new Map<string, LabelledText[]>();
  for (const e of examples) {
    const list = byClass.get(e.label);
    if (list === undefined) byClass.set(e.label, [e]);
    else list.push(e);
  }
  return byClass;
}

/**
 * Reads and checks a classification data set before anything is written: train and test
 * examples, the label map (string labels -> ids) and the majority-class reference. The test split
 * is `testFile`, else a deterministic hash of each text (`testFraction`), which keeps at least one
 * example of every class for training.
 */
export async function loadClassificationData(options: ClassificationDataOptions): Promise<ClassificationData> {
  const seed = options.seed ?? 0;
  const all = await readClassificationFile(options.trainFile, options);
  const byClass = classCounts(all.examples);
  let train: LabelledText[];
  let test: LabelledText[];
  let testName: string;
  if (options.testFile === undefined) {
    const fraction = options.testFraction ?? 0.2;
    checkTestFraction(fraction);
    for (const [label, list] of byClass) {
      if (list.length === 1) {
        throw new MrlError(
          'corrupt-file',
          `${options.trainFile} line ${list[0]!.line}: class '${label}' has only this one example, so it cannot be both trained on and tested.`,
          'Add examples of the class, remove the line, or give a separate test file.',
        );
      }
    }
    const split = hashSplit(all.size, (i) => all.examples[i]!.text, fraction, seed);
    const inTrain = new Set(split.train.map((i) => all.examples[i]!.label));
    // A class whose every text hashed to test keeps its lowest-hash example for training.
    const moved = new Set<number>();
    for (const [label, list] of byClass) {
      if (inTrain.has(label)) continue;
      const keep = list.reduce((a, b) => (hashString(b.text, seed) < hashString(a.text, seed) ? b : a));
      moved.add(all.examples.indexOf(keep));
    }
    train = [...split.train, ...moved].sort((a, b) => a - b).map((i) => all.examples[i]!);
    test = split.test.filter((i) => !moved.has(i)).map((i) => all.examples[i]!);
    testName = `hash split of ${options.trainFile} (${Math.round(fraction * 100)}%)`;
    if (test.length === 0) {
      throw new MrlError(
        'invalid-argument',
        `the hash split of ${options.trainFile} (${all.size} examples, testFraction ${fraction}) left no test examples.`,
        'Raise testFraction, add examples, or give a separate test file.',
      );
    }
  } else {
    train = [...all.examples];
    test = [...(await readClassificationFile(options.testFile, options)).examples];
    testName = options.testFile;
    for (const e of test) {
      if (!byClass.has(e.label)) {
        throw new MrlError(
          'corrupt-file',
          `${options.testFile} line ${e.line}: label '${e.label}' never occurs in the training file ${options.trainFile}.`,
          'A model cannot predict a class it was not trained on: add training examples of it, or remove the test line.',
        );
      }
    }
    for (const [label, list] of byClass) {
      if (list.length === 1) {
        options.onWarning?.(
          `${options.trainFile} line ${list[0]!.line}: class '${label}' has a single training example; its scores will be noisy.`,
        );
      }
    }
  }
  let labels: LabelMap;
  if (options.labels === undefined) {
    labels = LabelMap.fromNames(train.map((e) => e.label));
  } else {
    labels = options.labels;
    for (const e of train) labels.id(e.label, `${options.trainFile} line ${e.line}`);
    const trained = new Set(train.map((e) => e.label));
    const empty = labels.names.find((n) => !trained.has(n));
    if (empty !== undefined) {
      throw new MrlError(
        'corrupt-file',
        `class '${empty}' of the saved label map has no training examples in ${options.trainFile} (an empty class).`,
        'Train on a file with examples of every class, or start a new run folder (a new labels.json).',
      );
    }
  }
  if (labels.size < 2) {
    throw new MrlError(
      'corrupt-file',
      `${options.trainFile} has a single class ('${labels.names[0]}'): nothing to tell apart.`,
      `Give examples of at least two classes in the '${options.labelField ?? 'label'}' field.`,
    );
  }
  const trainLabels = Int32Array.from(train, (e) => labels.id(e.label));
  const testLabels = Int32Array.from(test, (e) => labels.id(e.label));
  const majority = majorityClass(trainLabels, testLabels).accuracy;
  return {
    train: new ArraySource(options.trainFile, train),
    test: new ArraySource(testName, test),
    labels,
    trainLabels,
    testLabels,
    majority,
    testName,
  };
}

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MrlError } from '@mrl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClassificationData, readClassificationFile } from '../../src/data/classification.js';
import { LabelMap, loadLabelMap, saveLabelMap } from '../../src/data/labels.js';
import { readNumberedLines } from '../../src/data/lines.js';
import { loadPairData, readPairFile } from '../../src/data/pairs.js';
import { fileFormat, readRecords } from '../../src/data/records.js';
import { hashSplit } from '../../src/data/split.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-text-data-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function file(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

/** Rejects with an MrlError whose message matches. */
async function rejects(promise: Promise<unknown>, message: RegExp): Promise<MrlError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(MrlError.is(error), `expected an MrlError, got ${String(error)}`).toBe(true);
  expect((error as MrlError).message).toMatch(message);
  return error as MrlError;
}

/** Two classes of five texts each, distinct texts. */
function twoClasses(extra: unknown[] = []): unknown[] {
  return [
    ...Array.from({ length: 5 }, (_, i) => ({ text: `a cat number ${i}`, label: 'animal' })),
    ...Array.from({ length: 5 }, (_, i) => ({ text: `a bus number ${i}`, label: 'vehicle' })),
    ...extra,
  ];
}

describe('reading lines', () => {
  it('numbers lines, drops CR and the BOM, and keeps a last line without a newline', async () => {
    const path = await file('crlf.txt', '\ufeffone\r\ntwo\r\n\r\nthree');
    const lines = [];
    for await (const l of readNumberedLines(path)) lines.push(l);
    expect(lines).toEqual([
      { text: 'one', line: 1 },
      { text: 'two', line: 2 },
      { text: '', line: 3 },
      { text: 'three', line: 4 },
    ]);
  });

  it('refuses bytes that are not UTF-8, naming the file, line and byte', async () => {
    const latin1 = Buffer.concat([
      Buffer.from('{"text":"ok","label":"a"}\n{"text":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('","label":"b"}\n'),
    ]);
    const path = await file('latin1.jsonl', latin1);
    const error = await rejects(
      readClassificationFile(path),
      /latin1\.jsonl line 2 is not valid UTF-8 \(bad byte 0xe9 at byte 13/,
    );
    expect(error.fix).toMatch(/iconv/);
  });

  it('names the bad byte of a CSV line and of a stray continuation byte', async () => {
    const csv = await file(
      'latin1.csv',
      Buffer.concat([Buffer.from('text,label\nna'), Buffer.from([0xef, 0x76]), Buffer.from('e,x\n')]),
    );
    await rejects(
      readClassificationFile(csv),
      /latin1\.csv line 2 is not valid UTF-8 \(bad byte 0xef at byte 3 of the line\)/,
    );
    const stray = await file(
      'stray.txt',
      Buffer.concat([Buffer.from('caf\u00e9'), Buffer.from([0xa9]), Buffer.from('\n')]),
    );
    await rejects(
      readRecords(stray).next(),
      /stray\.txt line 1 is not valid UTF-8 \(bad byte 0xa9 at byte 6 of the line\)/,
    );
  });

  it('refuses an over-long line, naming its number', async () => {
    const path = await file('long-line.jsonl', `${jsonl([{ text: 'a', label: 'x' }])}${'y'.repeat(5000)}\n`);
    await rejects(
      readClassificationFile(path, { maxLineBytes: 1000 }),
      /long-line\.jsonl line 2 is longer than 1000 bytes/,
    );
  });

  it('names a missing file', async () => {
    await rejects(readClassificationFile(join(dir, 'nope.jsonl')), /cannot read .*nope\.jsonl/);
  });
});

describe('record formats', () => {
  it('picks the format from the extension and refuses an unknown one', () => {
    expect(fileFormat('a.JSONL')).toBe('jsonl');
    expect(fileFormat('a.ndjson')).toBe('jsonl');
    expect(fileFormat('a.csv')).toBe('csv');
    expect(fileFormat('a.tsv')).toBe('tsv');
    expect(fileFormat('a.txt')).toBe('txt');
    expect(() => fileFormat('data.parquet')).toThrow(/cannot tell the format of data\.parquet/);
  });

  it('reads CSV with quoted commas and a quoted newline, keeping file line numbers', async () => {
    const path = await file('reviews.csv', 'review,stars\n"good, really",5\n"two\nlines",1\nplain,3\n');
    const records = [];
    for await (const r of readRecords(path)) records.push(r);
    expect(records.map((r) => r.fields)).toEqual([
      { review: 'good, really', stars: '5' },
      { review: 'two\nlines', stars: '1' },
      { review: 'plain', stars: '3' },
    ]);
    expect(records.map((r) => r.line)).toEqual([2, 4, 5]);
  });

  it('reads TSV with quotes as plain text', async () => {
    const path = await file('quotes.tsv', 'text\tlabel\nhe said "hi\tgreeting\n');
    const source = await readClassificationFile(path);
    expect(source.at(0)).toEqual({ text: 'he said "hi', label: 'greeting', line: 2 });
  });

  it('names the line of a CSV row with the wrong number of fields', async () => {
    const path = await file('ragged.csv', 'text,label\nfine,a\nextra,b,c\n');
    await rejects(readClassificationFile(path), /ragged\.csv line 3: .*/);
  });

  it('names a line that is not JSON, or not an object', async () => {
    await rejects(
      readClassificationFile(await file('bad.jsonl', '{"text":"a","label":"x"}\n{text: a}\n')),
      /bad\.jsonl line 2 is not JSON/,
    );
    await rejects(
      readClassificationFile(await file('array.jsonl', '["a","x"]\n')),
      /array\.jsonl line 1 is not a JSON object \(got an array\)/,
    );
  });
});

describe('classification files', () => {
  it('refuses an empty file', async () => {
    await rejects(readClassificationFile(await file('empty.jsonl', '\n\n')), /empty\.jsonl has no records/);
    await rejects(
      readClassificationFile(await file('header-only.csv', 'text,label\n')),
      /header-only\.csv has no records/,
    );
  });

  it('names the line and the fields present when the text or label field is missing', async () => {
    const path = await file(
      'missing.jsonl',
      jsonl([
        { text: 'a', label: 'x' },
        { body: 'b', label: 'y' },
      ]),
    );
    const error = await rejects(
      readClassificationFile(path),
      /missing\.jsonl line 2 has no field 'text' \(its fields: 'body', 'label'\)/,
    );
    expect(error.fix).toMatch(/set textField/);
    await rejects(readClassificationFile(path, { textField: 'body' }), /missing\.jsonl line 1 has no field 'body'/);
    const noLabel = await file('nolabel.csv', 'text,kind\na,b\n');
    await rejects(
      readClassificationFile(noLabel),
      /nolabel\.csv line 2 has no label field 'label' \(its fields: 'text', 'kind'\)/,
    );
    expect((await readClassificationFile(noLabel, { labelField: 'kind' })).at(0).label).toBe('b');
  });

  it('refuses an empty text and an empty class name, naming the line', async () => {
    await rejects(
      readClassificationFile(await file('blank.jsonl', jsonl([{ text: '  ', label: 'x' }]))),
      /blank\.jsonl line 1: field 'text' is empty/,
    );
    await rejects(
      readClassificationFile(
        await file(
          'empty-class.jsonl',
          jsonl([
            { text: 'a', label: 'x' },
            { text: 'b', label: '' },
          ]),
        ),
      ),
      /empty-class\.jsonl line 2: label 'label' is empty \(an empty class name\)/,
    );
    await rejects(
      readClassificationFile(await file('num.jsonl', jsonl([{ text: 7, label: 'x' }]))),
      /num\.jsonl line 1: field 'text' is a number, not a string/,
    );
    await rejects(
      readClassificationFile(await file('obj.jsonl', jsonl([{ text: 'a', label: { a: 1 } }]))),
      /obj\.jsonl line 1: label 'label' is an object/,
    );
  });

  it('cuts an over-long text with a warning naming the line, or refuses it', async () => {
    const path = await file(
      'long.jsonl',
      jsonl([
        { text: 'short', label: 'x' },
        { text: 'z'.repeat(50), label: 'y' },
      ]),
    );
    const warnings: string[] = [];
    const source = await readClassificationFile(path, { maxTextChars: 20, onWarning: (w) => warnings.push(w) });
    expect(source.at(1).text).toBe('z'.repeat(20));
    expect(warnings).toEqual([
      expect.stringMatching(/long\.jsonl line 2: field 'text' has 50 characters; kept the first 20/),
    ]);
    await rejects(
      readClassificationFile(path, { maxTextChars: 20, longText: 'error' }),
      /long\.jsonl line 2: field 'text' has 50 characters, over the limit of 20/,
    );
  });

  it('maps string and number labels to ids by sorted name', async () => {
    const map = LabelMap.fromNames(['pos', 'neg', 'pos', 'neutral']);
    expect(map.names).toEqual(['neg', 'neutral', 'pos']);
    expect(map.id('pos')).toBe(2);
    expect(LabelMap.fromNames(['10', '9', '-1']).names).toEqual(['-1', '9', '10']);
    expect(() => map.id('happy', 'x.jsonl line 3')).toThrow(
      /x\.jsonl line 3: label 'happy' is not one of the 3 trained classes/,
    );
  });

  it('saves labels.json in the run folder and reads it back', async () => {
    const runDir = join(dir, 'run-labels');
    const path = await saveLabelMap(runDir, LabelMap.fromNames(['b', 'a']));
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ format: 'mrl-labels', version: 1, labels: ['a', 'b'] });
    expect((await loadLabelMap(runDir)).names).toEqual(['a', 'b']);
    await rejects(loadLabelMap(join(dir, 'no-run')), /no label map at .*no-run\/labels\.json/);
    await rejects(loadLabelMap(await file('wrong.json', '{"labels": [1]}')), /wrong\.json is not an mrl label map/);
  });

  it('refuses a label that occurs only in the test file, naming its line', async () => {
    const train = await file('train.jsonl', jsonl(twoClasses()));
    const test = await file(
      'test.jsonl',
      jsonl([
        { text: 'a cow', label: 'animal' },
        { text: 'a rose', label: 'plant' },
      ]),
    );
    const error = await rejects(
      loadClassificationData({ trainFile: train, testFile: test }),
      /test\.jsonl line 2: label 'plant' never occurs in the training file .*train\.jsonl/,
    );
    expect(error.fix).toMatch(/add training examples/);
  });

  it('refuses a class with one example under a hash split, and warns with a test file', async () => {
    const path = await file('single.jsonl', jsonl(twoClasses([{ text: 'a rose', label: 'plant' }])));
    await rejects(
      loadClassificationData({ trainFile: path }),
      /single\.jsonl line 11: class 'plant' has only this one example/,
    );
    const test = await file('single-test.jsonl', jsonl([{ text: 'a cow', label: 'animal' }]));
    const warnings: string[] = [];
    const data = await loadClassificationData({ trainFile: path, testFile: test, onWarning: (w) => warnings.push(w) });
    expect(data.labels.names).toEqual(['animal', 'plant', 'vehicle']);
    expect(warnings).toEqual([
      expect.stringMatching(/single\.jsonl line 11: class 'plant' has a single training example/),
    ]);
  });

  it('refuses a single class, and a saved class without training examples (an empty class)', async () => {
    const one = await file(
      'one-class.jsonl',
      jsonl([
        { text: 'a', label: 'x' },
        { text: 'b', label: 'x' },
        { text: 'c', label: 'x' },
      ]),
    );
    await rejects(
      loadClassificationData({ trainFile: one, testFraction: 0.5 }),
      /one-class\.jsonl has a single class \('x'\)/,
    );
    const path = await file('two.jsonl', jsonl(twoClasses()));
    await rejects(
      loadClassificationData({ trainFile: path, labels: LabelMap.fromNames(['animal', 'plant', 'vehicle']) }),
      /class 'plant' of the saved label map has no training examples in .*two\.jsonl \(an empty class\)/,
    );
    await rejects(
      loadClassificationData({ trainFile: path, labels: LabelMap.fromNames(['animal', 'plant']) }),
      /two\.jsonl line 6: label 'vehicle' is not one of the 2 trained classes/,
    );
  });

  it('splits by a hash of the text: deterministic, disjoint, every class kept for training', async () => {
    const rows = twoClasses(
      Array.from({ length: 200 }, (_, i) => ({ text: `text ${i}`, label: i % 2 ? 'animal' : 'vehicle' })),
    );
    const path = await file('many.jsonl', jsonl(rows));
    const a = await loadClassificationData({ trainFile: path, testFraction: 0.25 });
    const b = await loadClassificationData({ trainFile: path, testFraction: 0.25 });
    expect(a.test.examples.map((e) => e.line)).toEqual(b.test.examples.map((e) => e.line));
    expect(a.train.size + a.test.size).toBe(rows.length);
    const testTexts = new Set(a.test.examples.map((e) => e.text));
    expect(a.train.examples.some((e) => testTexts.has(e.text))).toBe(false);
    expect(a.test.size / rows.length).toBeGreaterThan(0.15);
    expect(a.test.size / rows.length).toBeLessThan(0.35);
    // Reordering the file does not move any text to the other side.
    const shuffled = await file('many-reversed.jsonl', jsonl([...rows].reverse()));
    const c = await loadClassificationData({ trainFile: shuffled, testFraction: 0.25 });
    expect(new Set(c.test.examples.map((e) => e.text))).toEqual(testTexts);
    // A class whose texts all hash to the test side keeps one for training.
    const split = hashSplit(3, (i) => ['x', 'y', 'z'][i]!, 0.999);
    expect(split.test.length).toBe(3);
    const few = await file(
      'few.jsonl',
      jsonl([
        { text: 'x', label: 'p' },
        { text: 'y', label: 'p' },
        { text: 'z', label: 'q' },
        { text: 'w', label: 'q' },
      ]),
    );
    const kept = await loadClassificationData({ trainFile: few, testFraction: 0.999 });
    expect(new Set(kept.train.examples.map((e) => e.label))).toEqual(new Set(['p', 'q']));
    expect(kept.test.size).toBe(2);
    await rejects(
      loadClassificationData({ trainFile: few, testFraction: 1.5 }),
      /testFraction must be between 0 and 1/,
    );
  });

  it('gives the majority-class reference', async () => {
    const train = await file('maj-train.jsonl', jsonl(twoClasses([{ text: 'a cat again', label: 'animal' }])));
    const test = await file(
      'maj-test.jsonl',
      jsonl([
        { text: 'x', label: 'animal' },
        { text: 'y', label: 'vehicle' },
        { text: 'z', label: 'vehicle' },
        { text: 'w', label: 'vehicle' },
      ]),
    );
    const data = await loadClassificationData({ trainFile: train, testFile: test });
    expect(data.majority).toBeCloseTo(0.25, 10);
    expect([...data.testLabels]).toEqual([0, 1, 1, 1]);
  });
});

describe('pair files', () => {
  it('reads pairs and triplets with configurable fields', async () => {
    const pairs = await file('qa.jsonl', jsonl([{ q: 'who', a: 'me' }]));
    expect((await readPairFile(pairs, { anchorField: 'q', positiveField: 'a' })).at(0)).toEqual({
      anchor: 'who',
      positive: 'me',
      line: 1,
    });
    const triplets = await file('trip.csv', 'anchor,positive,negative\nq1,p1,n1\nq2,p2,n2\n');
    const source = await readPairFile(triplets);
    expect(source.at(1)).toEqual({ anchor: 'q2', positive: 'p2', negative: 'n2', line: 3 });
  });

  it('names the line of a missing positive or hard negative', async () => {
    const path = await file(
      'nopos.jsonl',
      jsonl([
        { anchor: 'a', positive: 'b' },
        { anchor: 'c', answer: 'd' },
      ]),
    );
    const error = await rejects(
      readPairFile(path),
      /nopos\.jsonl line 2 has no field 'positive' \(its fields: 'anchor', 'answer'\)/,
    );
    expect(error.fix).toMatch(/set positiveField/);
    const neg = await file(
      'noneg.jsonl',
      jsonl([
        { anchor: 'a', positive: 'b', negative: 'x' },
        { anchor: 'c', positive: 'd' },
      ]),
    );
    await rejects(readPairFile(neg), /noneg\.jsonl line 2 has no field 'negative'/);
    await rejects(readPairFile(path, { negativeField: 'hard' }), /nopos\.jsonl line 1 has no field 'hard'/);
  });

  it('refuses an empty pairs file and a split that leaves too few pairs', async () => {
    await rejects(readPairFile(await file('empty.tsv', 'anchor\tpositive\n')), /empty\.tsv has no records/);
    const one = await file('one-pair.jsonl', jsonl([{ anchor: 'a', positive: 'b' }]));
    const test = await file('one-pair-test.jsonl', jsonl([{ anchor: 'c', positive: 'd' }]));
    await rejects(
      loadPairData({ trainFile: one, testFile: test }),
      /one-pair\.jsonl gives 1 training pair\(s\); in-batch negatives need at least 2/,
    );
  });

  it('splits pairs by a hash of the anchor', async () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ anchor: `q${i}`, positive: `p${i}` }));
    const data = await loadPairData({ trainFile: await file('split-pairs.jsonl', jsonl(rows)), testFraction: 0.3 });
    expect(data.train.size + data.test.size).toBe(100);
    expect(data.hasNegatives).toBe(false);
    const anchors = new Set(data.test.examples.map((p) => p.anchor));
    expect(data.train.examples.some((p) => anchors.has(p.anchor))).toBe(false);
    expect(data.test.size).toBeGreaterThan(15);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import { ENCODER_REGISTRATION, createRandom, type EncoderRegistration } from '@mrl/core';
import { describe, expect, it } from 'vitest';
import { packagedCorpus, readJsonl, readTextLines, splitSentences } from '../src/corpora.js';
import { textModule } from '../src/di.js';
import { parseGloss, parseSynsetLine, readWordNet, WORDNET_LEXNAMES } from '../src/wordnet.js';

async function take<T>(stream: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of stream) {
    out.push(x);
    if (out.length >= n) break;
  }
  return out;
}

describe('corpora', () => {
  it('streams every packaged corpus', async () => {
    for (const name of ['brown', 'sotu', 'moby-dick', 'nlp-corpus'] as const) {
      const first = await take(packagedCorpus([name]), 50);
      expect(first.length).toBe(50);
      expect(first.every((s) => typeof s === 'string' && s.length > 0)).toBe(true);
    }
    // Brown's part-of-speech tags are dropped.
    const [brown] = await take(packagedCorpus(['brown']), 1);
    expect(brown).toMatch(/^The Fulton County Grand Jury said Friday/);
    expect(brown).not.toContain('/at');
  });

  it('reads plain text and JSONL, naming a bad line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mrl-corpus-'));
    try {
      await writeFile(join(dir, 'a.txt'), 'first line\n\n  second line  \n');
      expect(await take(readTextLines(join(dir, 'a.txt')), 10)).toEqual(['first line', 'second line']);
      await writeFile(join(dir, 'b.jsonl'), '{"text":"one"}\n{"text":2}\n');
      await expect(take(readJsonl(join(dir, 'b.jsonl')), 10)).rejects.toThrow(
        /b\.jsonl line 2 has no string field 'text'/,
      );
      await expect(take(readTextLines(join(dir, 'missing.txt')), 1)).rejects.toThrow(/cannot read .*missing\.txt/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('splits sentences and rejects an unknown corpus', async () => {
    expect(splitSentences('Call me Ishmael. Some years ago! Why? "Yes." End')).toEqual([
      'Call me Ishmael.',
      'Some years ago!',
      'Why?',
      '"Yes."',
      'End',
    ]);
    await expect(take(packagedCorpus(['gutenberg']), 1)).rejects.toThrow(/unknown corpus 'gutenberg'/);
  });
});

describe('WordNet', () => {
  it('parses a synset line with its gloss and examples', () => {
    const s = parseSynsetLine(
      '00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 021 * 00005041 v 0000 | draw air into, and expel out of, the lungs; "I can breathe better when the air is clean"; "The patient is respiring"  ',
    )!;
    expect(s.words).toEqual(['breathe', 'take a breath', 'respire', 'suspire']);
    expect(WORDNET_LEXNAMES[s.lexFile]).toBe('verb.body');
    expect(s.definition).toBe('draw air into, and expel out of, the lungs');
    expect(s.examples).toEqual(['I can breathe better when the air is clean', 'The patient is respiring']);
    expect(parseGloss('a gloss without examples').examples).toEqual([]);
    expect(parseSynsetLine('  1 This software and database is being provided')).toBeNull();
  });

  it('reads 117,659 synsets in 45 classes, 32k+ with examples', async () => {
    let count = 0;
    let examples = 0;
    const classes = new Set<number>();
    for await (const s of readWordNet()) {
      count += 1;
      if (s.examples.length > 0) examples += 1;
      classes.add(s.lexFile);
    }
    expect(count).toBe(117659);
    expect(classes.size).toBe(45);
    expect(WORDNET_LEXNAMES.length).toBe(45);
    expect(examples).toBeGreaterThan(32000);
  });

  it('names the missing WordNet folder', async () => {
    await expect(take(readWordNet('/nonexistent/wordnet'), 1)).rejects.toThrow(
      /WordNet data file \/nonexistent\/wordnet\/data\.noun is missing/,
    );
  });
});

describe('textModule', () => {
  it('registers the BERT configs by name', async () => {
    const container = new Container();
    await container.loadAsync(textModule);
    const regs = container.getAll<EncoderRegistration>(ENCODER_REGISTRATION);
    expect(regs.map((r) => r.name)).toEqual(['bert-tiny', 'bert-mini', 'bert-small']);
    const encoder = regs[0]!.create(
      { ...regs[0]!.defaults, vocabSize: 30, embeddingDim: 8, numHeads: 2, intermediateSize: 8 },
      createRandom(0),
    );
    expect(encoder.embeddingDim).toBe(8);
    encoder.dispose();
  });
});

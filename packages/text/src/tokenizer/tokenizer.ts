import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MrlError } from '@mrl/core';
import { BERT_SPECIAL_TOKENS } from './tokenizer-json.js';

/** Token ids of a batch, padded to the longest sequence (row-major [batch, length]). */
export interface EncodedBatch {
  ids: Int32Array;
  /** 1 for a real token, 0 for padding. */
  attentionMask: Int32Array;
  batch: number;
  length: number;
}

/** Ids of the BERT special tokens in a vocabulary. */
export interface SpecialIds {
  pad: number;
  unk: number;
  cls: number;
  sep: number;
  mask: number;
}

interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

/**
 * A WordPiece tokenizer loaded fully offline through transformers.js from a folder holding
 * `tokenizer.json` and `tokenizer_config.json` (as written by `writeTokenizerFiles`).
 *
 * @example
 * ```ts
 * const tokenizer = await TextTokenizer.load('models/bert-base-uncased');
 * tokenizer.encode('i like strawberries'); // [101, 1045, 2066, 13137, 20968, 102]
 * ```
 */
export class TextTokenizer {
  private constructor(
    readonly dir: string,
    readonly vocabSize: number,
    readonly special: SpecialIds,
    private readonly hf: HfTokenizer,
  ) {}

  static async load(dir: string): Promise<TextTokenizer> {
    const folder = resolve(dir);
    const file = join(folder, 'tokenizer.json');
    let json: { model?: { vocab?: Record<string, number> } };
    try {
      json = JSON.parse(await readFile(file, 'utf8')) as typeof json;
    } catch (cause) {
      const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
      throw new MrlError(
        missing ? 'missing-file' : 'corrupt-file',
        missing ? `no tokenizer at ${file}.` : `${file} is not valid JSON: ${(cause as Error).message}.`,
        'Build one with buildBertTokenizer(dir) or train one with trainWordPieceTokenizer().',
        { cause },
      );
    }
    const vocab = json.model?.vocab;
    if (vocab === undefined)
      throw new MrlError('corrupt-file', `${file} has no model.vocab: it is not a WordPiece tokenizer.`);
    const ids = BERT_SPECIAL_TOKENS.map((t) => {
      const id = vocab[t];
      if (id === undefined) throw new MrlError('corrupt-file', `${file} has no ${t} token.`);
      return id;
    });
    const { AutoTokenizer, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${dirname(folder)}/`;
    const hf = (await AutoTokenizer.from_pretrained(basename(folder), {
      local_files_only: true,
    })) as unknown as HfTokenizer;
    const [pad, unk, cls, sep, mask] = ids as [number, number, number, number, number];
    return new TextTokenizer(folder, Object.keys(vocab).length, { pad, unk, cls, sep, mask }, hf);
  }

  /** Ids of one text, with `[CLS] ... [SEP]` unless `addSpecialTokens` is false. */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.hf.encode(text, { add_special_tokens: addSpecialTokens });
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    return this.hf.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  /**
   * A padded batch: each text becomes `[CLS] pieces [SEP]`, cut to `maxLength` (keeping the
   * final `[SEP]`), then padded with `[PAD]` to the longest row.
   */
  encodeBatch(texts: readonly string[], maxLength: number): EncodedBatch {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new MrlError(
        'invalid-argument',
        `maxLength must be an integer >= 2 (room for [CLS] and [SEP]), got ${maxLength}.`,
      );
    }
    return padRows(
      texts.map((t) => this.encode(t, false)),
      maxLength,
      this.special,
    );
  }
}

/** Wraps id rows in `[CLS] ... [SEP]`, truncates to `maxLength` and pads to the longest row. */
export function padRows(rows: readonly (readonly number[])[], maxLength: number, special: SpecialIds): EncodedBatch {
  const cut = rows.map((r) => [special.cls, ...r.slice(0, maxLength - 2), special.sep]);
  const length = Math.max(2, ...cut.map((r) => r.length));
  const ids = new Int32Array(cut.length * length).fill(special.pad);
  const attentionMask = new Int32Array(cut.length * length);
  cut.forEach((r, i) => {
    ids.set(r, i * length);
    attentionMask.fill(1, i * length, i * length + r.length);
  });
  return { ids, attentionMask, batch: cut.length, length };
}

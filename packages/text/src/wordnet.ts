import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { createRandom, MrlError, permutation, writeFileAtomically } from '@mrl/core';
import { readTextLines } from './corpora.js';

/** The 45 WordNet lexicographer files, by number (WordNet's `lexnames`). */
export const WORDNET_LEXNAMES = [
  'adj.all',
  'adj.pert',
  'adv.all',
  'noun.Tops',
  'noun.act',
  'noun.animal',
  'noun.artifact',
  'noun.attribute',
  'noun.body',
  'noun.cognition',
  'noun.communication',
  'noun.event',
  'noun.feeling',
  'noun.food',
  'noun.group',
  'noun.location',
  'noun.motive',
  'noun.object',
  'noun.person',
  'noun.phenomenon',
  'noun.plant',
  'noun.possession',
  'noun.process',
  'noun.quantity',
  'noun.relation',
  'noun.shape',
  'noun.state',
  'noun.substance',
  'noun.time',
  'verb.body',
  'verb.change',
  'verb.cognition',
  'verb.communication',
  'verb.competition',
  'verb.consumption',
  'verb.contact',
  'verb.creation',
  'verb.emotion',
  'verb.motion',
  'verb.perception',
  'verb.possession',
  'verb.social',
  'verb.stative',
  'verb.weather',
  'adj.ppl',
] as const;

/** One WordNet synset: its words, gloss split into definition and example sentences, and its lexicographer class. */
export interface Synset {
  /** `<pos><offset>`, unique across the four data files. */
  id: string;
  pos: 'n' | 'v' | 'a' | 's' | 'r';
  /** Lexicographer file number, 0..44 (the class for gloss classification). */
  lexFile: number;
  words: string[];
  definition: string;
  examples: string[];
}

export const DEFAULT_WORDNET_DIR = '/usr/share/wordnet';

/** Splits a WordNet gloss `definition; "example"; "example"` into its parts. */
export function parseGloss(gloss: string): { definition: string; examples: string[] } {
  const parts = gloss.split(/;\s*(?=")/);
  const definition = parts[0]!.trim().replace(/;$/, '').trim();
  const examples = parts
    .slice(1)
    .map((p) =>
      p
        .trim()
        .replace(/^"/, '')
        .replace(/"[\s;]*$/, '')
        .trim(),
    )
    .filter((p) => p.length > 0);
  return { definition, examples };
}

/** Parses one line of a WordNet `data.<pos>` file; null for the licence header. */
export function parseSynsetLine(line: string): Synset | null {
  if (!/^\d{8} \d{2} [nvasr] /.test(line)) return null;
  const bar = line.indexOf(' | ');
  const head = (bar < 0 ? line : line.slice(0, bar)).split(' ');
  const [offset, lex, pos, countHex] = head;
  if (offset === undefined || lex === undefined || pos === undefined || countHex === undefined) return null;
  const count = Number.parseInt(countHex, 16);
  const words: string[] = [];
  for (let i = 0; i < count; i++) words.push((head[4 + 2 * i] ?? '').replace(/_/g, ' ').replace(/\(.*\)$/, ''));
  const { definition, examples } = parseGloss(bar < 0 ? '' : line.slice(bar + 3));
  return { id: `${pos}${offset}`, pos: pos as Synset['pos'], lexFile: Number(lex), words, definition, examples };
}

/**
 * Streams the synsets of Debian's `wordnet-base` (117,659 in WordNet 3.0), file by file.
 *
 * @example
 * ```ts
 * for await (const s of readWordNet()) console.log(WORDNET_LEXNAMES[s.lexFile], s.definition);
 * ```
 */
export async function* readWordNet(dir: string = DEFAULT_WORDNET_DIR): AsyncGenerator<Synset> {
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    const file = join(dir, `data.${pos}`);
    try {
      await access(file);
    } catch (cause) {
      throw new MrlError(
        'missing-file',
        `WordNet data file ${file} is missing.`,
        'Install it with: apt-get install wordnet-base (or pass the folder holding data.noun).',
        {
          cause,
        },
      );
    }
    for await (const line of readTextLines(file)) {
      const synset = parseSynsetLine(line);
      if (synset !== null) yield synset;
    }
  }
}

export interface WordNetFileOptions {
  /** WordNet folder (default Debian's). */
  wordnetDir?: string;
  /** Keep only these lexicographer classes (default all 45). */
  lexnames?: readonly string[];
  /** At most this many records per file (default all), taken in a seeded order. */
  limit?: number;
  seed?: number;
}

/**
 * Writes two user-style data files from WordNet, for examples, tests and the README's runs:
 * `<dir>/lexnames.jsonl` (`{"text": gloss, "label": "noun.animal"}` per synset) and
 * `<dir>/pairs.jsonl` (`{"anchor": example sentence, "positive": its gloss, "negative": the gloss
 * of another synset of the same lexicographer class}`: a hard negative on the same topic).
 *
 * @example
 * ```ts
 * const { classification, pairs } = await writeWordNetFiles('data/wordnet', { lexnames: ['noun.animal', 'noun.food'] });
 * ```
 */
export async function writeWordNetFiles(
  dir: string,
  options: WordNetFileOptions = {},
): Promise<{ classification: string; pairs: string; classes: number; records: number; pairRecords: number }> {
  const keep = options.lexnames === undefined ? undefined : new Set(options.lexnames);
  for (const name of options.lexnames ?? []) {
    if (!(WORDNET_LEXNAMES as readonly string[]).includes(name)) {
      throw new MrlError(
        'unknown-name',
        `'${name}' is not a WordNet lexicographer class.`,
        `Choose from: ${WORDNET_LEXNAMES.join(', ')}.`,
      );
    }
  }
  const synsets: Synset[] = [];
  for await (const s of readWordNet(options.wordnetDir)) {
    if (s.definition.length > 0 && (keep === undefined || keep.has(WORDNET_LEXNAMES[s.lexFile]!))) synsets.push(s);
  }
  const random = createRandom(options.seed ?? 0, 21);
  const order = [...permutation(synsets.length, random)].map((i) => synsets[i]!);
  const limit = options.limit ?? order.length;
  const byClass = new Map<number, Synset[]>();
  for (const s of order) byClass.set(s.lexFile, [...(byClass.get(s.lexFile) ?? []), s]);
  const classification = order.slice(0, limit).map((s) => ({ text: s.definition, label: WORDNET_LEXNAMES[s.lexFile] }));
  const pairs = order
    .filter((s) => s.examples.length > 0)
    .slice(0, limit)
    .map((s) => {
      const same = byClass.get(s.lexFile)!;
      let other = same[Math.floor(random() * same.length)]!;
      if (other.id === s.id) other = same[(same.indexOf(other) + 1) % same.length]!;
      return { anchor: s.examples[0]!, positive: s.definition, negative: other.definition };
    });
  const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
  const classificationPath = join(dir, 'lexnames.jsonl');
  const pairsPath = join(dir, 'pairs.jsonl');
  await writeFileAtomically(classificationPath, jsonl(classification));
  await writeFileAtomically(pairsPath, jsonl(pairs));
  return {
    classification: classificationPath,
    pairs: pairsPath,
    classes: new Set(classification.map((r) => r.label)).size,
    records: classification.length,
    pairRecords: pairs.length,
  };
}

import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { MrlError } from '@mrl/core';
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

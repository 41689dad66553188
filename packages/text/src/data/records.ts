import { Readable } from 'node:stream';
import { parse, CsvError } from 'csv-parse';
import { MrlError } from '@mrl/core';
import { readNumberedLines, type LineReadOptions } from './lines.js';

/** File formats a text data source reads, picked by extension. */
export const TEXT_FILE_FORMATS = ['jsonl', 'csv', 'tsv', 'txt'] as const;
export type TextFileFormat = (typeof TEXT_FILE_FORMATS)[number];

/** One record of a data file: field name -> value, and the line it starts on. */
export interface FileRecord {
  fields: Record<string, unknown>;
  line: number;
}

/** `.jsonl`/`.ndjson` -> jsonl, `.csv`, `.tsv`/`.tab`, `.txt` (one text a line, field `text`). */
export function fileFormat(path: string): TextFileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.tsv') || lower.endsWith('.tab')) return 'tsv';
  if (lower.endsWith('.txt')) return 'txt';
  throw new MrlError(
    'invalid-argument',
    `cannot tell the format of ${path} from its name.`,
    'Name the file .jsonl (one JSON object a line), .csv or .tsv (a header row, then one record a row) or .txt (one text a line).',
  );
}

async function* jsonlRecords(path: string, options: LineReadOptions): AsyncGenerator<FileRecord> {
  for await (const { text, line } of readNumberedLines(path, options)) {
    if (text.trim().length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `${path} line ${line} is not JSON: ${(cause as Error).message}.`,
        'Write one JSON object a line (JSON Lines).',
        { cause },
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new MrlError(
        'corrupt-file',
        `${path} line ${line} is not a JSON object (got ${Array.isArray(value) ? 'an array' : typeof value}).`,
        'Write one object a line, e.g. {"text": "...", "label": "..."}.',
      );
    }
    yield { fields: value as Record<string, unknown>, line };
  }
}

async function* delimitedRecords(path: string, delimiter: ',' | '\t', options: LineReadOptions) {
  // Lines are decoded (and checked as UTF-8) by readNumberedLines, so a quoted field spanning
  // lines still parses and csv-parse's line numbers match the file's.
  const source = Readable.from(
    (async function* () {
      for await (const { text } of readNumberedLines(path, options)) yield `${text}\n`;
    })(),
  );
  const parser = parse({
    delimiter,
    columns: (header: string[]) => header.map((h) => h.trim()),
    info: true,
    skip_empty_lines: true,
    // TSV files (GLUE, HF exports) rarely quote: a " inside a text is text.
    quote: delimiter === '\t' ? false : '"',
  });
  source.on('error', (error) => parser.destroy(error));
  source.pipe(parser);
  try {
    for await (const row of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      yield { fields: row.record as Record<string, unknown>, line: row.info.lines };
    }
  } catch (cause) {
    if (MrlError.is(cause)) throw cause;
    if (cause instanceof CsvError) {
      const line = (cause as CsvError & { lines?: number }).lines;
      throw new MrlError(
        'corrupt-file',
        `${path}${line === undefined ? '' : ` line ${line}`}: ${cause.message}`,
        delimiter === '\t'
          ? 'Check that every row has as many tab-separated fields as the header.'
          : 'Check that every row has as many comma-separated fields as the header, and that quotes are closed.',
        { cause },
      );
    }
    throw cause;
  }
}

async function* textRecords(path: string, options: LineReadOptions): AsyncGenerator<FileRecord> {
  for await (const { text, line } of readNumberedLines(path, options)) {
    if (text.trim().length > 0) yield { fields: { text: text.trim() }, line };
  }
}

/**
 * Streams the records of a JSONL, CSV, TSV or plain-text file (format from the extension), each
 * with its line number. CSV and TSV files start with a header row naming the fields.
 *
 * @example
 * ```ts
 * for await (const { fields, line } of readRecords('reviews.csv')) console.log(line, fields.text);
 * ```
 */
export async function* readRecords(path: string, options: LineReadOptions = {}): AsyncGenerator<FileRecord> {
  switch (fileFormat(path)) {
    case 'jsonl':
      yield* jsonlRecords(path, options);
      break;
    case 'csv':
      yield* delimitedRecords(path, ',', options);
      break;
    case 'tsv':
      yield* delimitedRecords(path, '\t', options);
      break;
    case 'txt':
      yield* textRecords(path, options);
      break;
  }
}

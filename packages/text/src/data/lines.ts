import { createReadStream } from 'node:fs';
import { MrlError } from '@mrl/core';

/** One line of a text file, decoded and checked, with its 1-based number. */
export interface NumberedLine {
  text: string;
  line: number;
}

export interface LineReadOptions {
  /** A line longer than this many bytes is refused (default 1 MiB): the file is likely not line-oriented text. */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;

function decodeLine(bytes: Buffer, path: string, line: number): string {
  try {
    // fatal: a byte sequence that is not UTF-8 throws instead of becoming U+FFFD in the training data.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: line !== 1 }).decode(bytes).replace(/\r$/, '');
  } catch (cause) {
    // Feed the bytes one at a time to a streaming decoder; name the lead byte of the sequence
    // that failed (e.g. a Latin-1 é, 0xe9, followed by an ASCII byte), or the byte itself.
    const stream = new TextDecoder('utf-8', { fatal: true });
    let lead = -1;
    let offset = -1;
    for (let i = 0; i < bytes.length && offset < 0; i++) {
      try {
        if (stream.decode(bytes.subarray(i, i + 1), { stream: true }).length > 0) lead = -1;
        if (bytes[i]! >= 0xc0) lead = i;
      } catch {
        offset = lead >= 0 ? lead : i;
      }
    }
    if (offset < 0) offset = lead >= 0 ? lead : bytes.length - 1;
    throw new MrlError(
      'corrupt-file',
      `${path} line ${line} is not valid UTF-8 (bad byte 0x${(bytes[offset] ?? 0).toString(16).padStart(2, '0')} at byte ${offset + 1} of the line).`,
      'Convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`.',
      { cause },
    );
  }
}

/**
 * Streams the lines of a file as UTF-8 text with their numbers, reading in chunks so the file is
 * never held whole. Bytes that are not UTF-8 and over-long lines are refused with the file and
 * line named; a trailing `\r` (CRLF files) and a leading byte-order mark are dropped.
 *
 * @example
 * ```ts
 * for await (const { text, line } of readNumberedLines('data/train.jsonl')) console.log(line, text);
 * ```
 */
export async function* readNumberedLines(
  path: string,
  options: LineReadOptions = {},
): AsyncGenerator<NumberedLine, void, undefined> {
  const maxLineBytes = options.maxLineBytes ?? 1 << 20;
  const stream = createReadStream(path);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let i = chunk.indexOf(NEWLINE); i >= 0; i = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, i);
        const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        pendingBytes = 0;
        line += 1;
        if (bytes.length > maxLineBytes) throw overLong(path, line, bytes.length, maxLineBytes);
        yield { text: decodeLine(bytes, path, line), line };
        start = i + 1;
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
        if (pendingBytes > maxLineBytes) throw overLong(path, line + 1, pendingBytes, maxLineBytes);
      }
    }
  } catch (cause) {
    if (MrlError.is(cause)) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new MrlError(
      'missing-file',
      `cannot read ${path}: ${(cause as Error).message}.`,
      code === 'ENOENT' ? 'Check the path (it is relative to the current folder).' : undefined,
      { cause },
    );
  } finally {
    stream.destroy();
  }
  if (pendingBytes > 0) {
    line += 1;
    yield { text: decodeLine(Buffer.concat(pending), path, line), line };
  }
}

function overLong(path: string, line: number, bytes: number, max: number): MrlError {
  return new MrlError(
    'corrupt-file',
    `${path} line ${line} is longer than ${max} bytes (${bytes} so far): this does not look like one record a line.`,
    'Check that the file is JSONL/CSV/TSV/text with one record a line, or raise maxLineBytes.',
  );
}

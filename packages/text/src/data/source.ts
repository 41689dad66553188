import { MrlError } from '@mrl/core';

/**
 * A data source of text examples: random access by index (what the trainer's sampler needs) and
 * an async stream (what an encoder pass or an export needs). Every source names the file it
 * came from, which run titles and error messages quote.
 */
export interface TextSource<Example> {
  /** The file the examples were read from (or a description, for generated data). */
  readonly name: string;
  readonly size: number;
  /** Example `index`, 0 <= index < size. */
  at(index: number): Example;
  stream(): AsyncGenerator<Example, void, undefined>;
}

/** A source over examples already read and checked. */
export class ArraySource<Example> implements TextSource<Example> {
  constructor(
    readonly name: string,
    readonly examples: readonly Example[],
  ) {}

  get size(): number {
    return this.examples.length;
  }

  at(index: number): Example {
    const example = this.examples[index];
    if (example === undefined) {
      throw new MrlError('invalid-argument', `${this.name}: example ${index} is out of range (size ${this.size}).`);
    }
    return example;
  }

  async *stream(): AsyncGenerator<Example, void, undefined> {
    for (const example of this.examples) yield example;
  }
}

/** How a text longer than `maxTextChars` is handled: cut with a warning, or refused. */
export type LongTextPolicy = 'truncate' | 'error';

/** Options shared by every file-backed text source. */
export interface TextFieldOptions {
  /** Characters kept of one text (default 20,000; far beyond what `maxLength` tokens use). */
  maxTextChars?: number;
  /** `truncate` (default: keep the first `maxTextChars`, warn naming the line) or `error`. */
  longText?: LongTextPolicy;
  /** Receives each warning (default: none are printed). */
  onWarning?: (message: string) => void;
  /** Refuse lines over this many bytes (default 1 MiB). */
  maxLineBytes?: number;
}

function fieldList(fields: Record<string, unknown>): string {
  const names = Object.keys(fields);
  return names.length === 0 ? 'none' : names.map((n) => `'${n}'`).join(', ');
}

/** The string `field` of a record, checked: present, a string, not blank, cut to `maxTextChars`. */
export function textOf(
  fields: Record<string, unknown>,
  field: string,
  where: { path: string; line: number },
  options: TextFieldOptions & { option?: string } = {},
): string {
  const value = fields[field];
  const option = options.option ?? 'textField';
  if (value === undefined || value === null) {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line} has no field '${field}' (its fields: ${fieldList(fields)}).`,
      `Add '${field}' to every record, or set ${option} to the field that holds the text.`,
    );
  }
  if (typeof value !== 'string') {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line}: field '${field}' is ${Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not a string.`,
      `Store the text of '${field}' as a JSON string.`,
    );
  }
  if (value.trim().length === 0) {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line}: field '${field}' is empty.`,
      'Remove the record or give it a text.',
    );
  }
  const max = options.maxTextChars ?? 20_000;
  if (value.length <= max) return value;
  if (options.longText === 'error') {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line}: field '${field}' has ${value.length} characters, over the limit of ${max}.`,
      'Shorten or split the text, raise maxTextChars, or set longText to truncate.',
    );
  }
  options.onWarning?.(
    `${where.path} line ${where.line}: field '${field}' has ${value.length} characters; kept the first ${max}.`,
  );
  return value.slice(0, max);
}

/** A class label of a record as a string: a string, a finite number or a boolean; never blank. */
export function labelOf(fields: Record<string, unknown>, field: string, where: { path: string; line: number }): string {
  const value = fields[field];
  if (value === undefined || value === null) {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line} has no label field '${field}' (its fields: ${fieldList(fields)}).`,
      `Add '${field}' to every record, or set labelField to the field that holds the class.`,
    );
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new MrlError('corrupt-file', `${where.path} line ${where.line}: label '${field}' is ${value}.`);
  }
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line}: label '${field}' is ${Array.isArray(value) ? 'an array' : `an ${typeof value}`}; a class is a string or a number.`,
      'Give each record one class name or number.',
    );
  }
  const label = String(value).trim();
  if (label.length === 0) {
    throw new MrlError(
      'corrupt-file',
      `${where.path} line ${where.line}: label '${field}' is empty (an empty class name).`,
      'Give the record a class, or remove it.',
    );
  }
  return label;
}

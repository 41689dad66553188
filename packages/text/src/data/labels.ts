import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MrlError, writeFileAtomically } from '@mrl/core';

/** Name of the label map in a run folder. */
export const LABELS_FILE = 'labels.json';
const FORMAT = 'mrl-labels';

/**
 * Class names <-> ids. Ids follow the sorted names (numerically when every name is an integer),
 * so the same training labels always give the same ids.
 *
 * @example
 * ```ts
 * const map = LabelMap.fromNames(['pos', 'neg', 'pos']); // neg = 0, pos = 1
 * await saveLabelMap('runs/reviews', map);
 * ```
 */
export class LabelMap {
  readonly #ids: Map<string, number>;

  constructor(readonly names: readonly string[]) {
    this.#ids = new Map(names.map((n, i) => [n, i]));
    if (this.#ids.size !== names.length) {
      const seen = new Set<string>();
      const twice = names.find((n) => (seen.has(n) ? true : (seen.add(n), false)));
      throw new MrlError('invalid-argument', `the label map lists '${twice}' twice.`);
    }
  }

  /** The distinct labels, sorted. */
  static fromNames(labels: Iterable<string>): LabelMap {
    const distinct = [...new Set(labels)];
    const numeric = distinct.every((n) => /^-?\d+$/.test(n));
    distinct.sort(numeric ? (a, b) => Number(a) - Number(b) : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return new LabelMap(distinct);
  }

  get size(): number {
    return this.names.length;
  }

  has(name: string): boolean {
    return this.#ids.has(name);
  }

  /** The id of a label; `where` names the record in the error when the label is unknown. */
  id(name: string, where?: string): number {
    const id = this.#ids.get(name);
    if (id === undefined) {
      throw new MrlError(
        'invalid-argument',
        `${where === undefined ? '' : `${where}: `}label '${name}' is not one of the ${this.size} trained classes.`,
        `The model knows: ${this.names.slice(0, 20).join(', ')}${this.size > 20 ? ', ...' : ''}.`,
      );
    }
    return id;
  }

  toJSON(): { format: string; version: number; labels: string[] } {
    return { format: FORMAT, version: 1, labels: [...this.names] };
  }
}

/** Writes `<runDir>/labels.json` atomically (temporary file, fsync, rename); returns its path. */
export async function saveLabelMap(runDir: string, map: LabelMap): Promise<string> {
  const path = join(runDir, LABELS_FILE);
  await writeFileAtomically(path, `${JSON.stringify(map.toJSON(), null, 2)}\n`);
  return path;
}

/** Reads a label map written by {@link saveLabelMap}: a run folder or the file itself. */
export async function loadLabelMap(pathOrRunDir: string): Promise<LabelMap> {
  const path = pathOrRunDir.endsWith('.json') ? pathOrRunDir : join(pathOrRunDir, LABELS_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MrlError(
      missing ? 'missing-file' : 'corrupt-file',
      missing ? `no label map at ${path}.` : `${path} is not JSON: ${(cause as Error).message}.`,
      'Point to the run folder of a classification run (it holds labels.json).',
      { cause },
    );
  }
  const record = json as { format?: unknown; labels?: unknown };
  if (
    record.format !== FORMAT ||
    !Array.isArray(record.labels) ||
    !record.labels.every((l) => typeof l === 'string' && l.length > 0)
  ) {
    throw new MrlError(
      'corrupt-file',
      `${path} is not an mrl label map (expected {"format": "${FORMAT}", "labels": [non-empty strings]}).`,
    );
  }
  return new LabelMap(record.labels as string[]);
}

import type { FlagSet, FlagSpec } from './flags.js';

/** What --help shows of a command; attached to each command by `defineMrlCommand`. */
export interface CommandHelp {
  name: string;
  description: string;
  examples: readonly string[];
  flags: FlagSet;
  /** Usage line after `mrl-cli <name>`, e.g. `[flags] [run folders...]`. */
  usage?: string;
}

/** Help fits 80-100 columns: the terminal's width when narrower than 100, never under 60. */
export function helpWidth(stream: { columns?: number | undefined } = process.stdout): number {
  const columns = stream.columns;
  return columns === undefined || columns <= 0 ? 100 : Math.max(60, Math.min(100, columns));
}

/** Greedy word wrap; a word longer than the width stays on its own line. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter((w) => w !== '')) {
      if (line === '') line = word;
      else if (line.length + 1 + word.length <= width) line += ` ${word}`;
      else {
        lines.push(line);
        line = word;
      }
    }
    lines.push(line);
  }
  return lines;
}

const VALUE_HINT: Record<FlagSpec['type'], string> = {
  string: '<value>',
  path: '<path>',
  boolean: '',
  integer: '<n>',
  number: '<x>',
  enum: '',
  integers: '<n,n,...>',
  numbers: '<x,x,...>',
  paths: '<path,...>',
};

function flagName(name: string, spec: FlagSpec): string {
  if (spec.type === 'boolean') return spec.default === true ? `--[no-]${name}` : `--${name}`;
  if (spec.type === 'enum') return `--${name}=<${(spec.options ?? []).join('|')}>`;
  return `--${name}=${spec.valueHint === undefined ? VALUE_HINT[spec.type] : `<${spec.valueHint.replace(/^<|>$/g, '')}>`}`;
}

function flagDescription(spec: FlagSpec): string {
  const parts = [spec.description];
  if (spec.default !== undefined && spec.type !== 'boolean') parts.push(`(default: ${String(spec.default)})`);
  if (spec.type === 'boolean' && spec.default === true) parts.push('(default: on)');
  if (spec.modalities !== undefined) parts.push(`[${spec.modalities.join(', ')}]`);
  return parts.join(' ');
}

/** Two columns: the flag, and its description wrapped beside it (or under it when the flag is long). */
function twoColumns(rows: readonly [string, string][], width: number): string[] {
  const left = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const out: string[] = [];
  for (const [l, r] of rows) {
    const text = wrap(r, width - left - 2);
    if (l.length + 2 <= left) {
      out.push(`  ${l.padEnd(left)}${text[0] ?? ''}`.trimEnd());
      for (const t of text.slice(1)) out.push(`  ${' '.repeat(left)}${t}`);
    } else {
      out.push(`  ${l}`);
      for (const t of text) out.push(`  ${' '.repeat(left)}${t}`);
    }
  }
  return out;
}

/** `mrl-cli <command> --help`: plain text (no colour), every line within `width` columns. */
export function renderCommandHelp(help: CommandHelp, width = helpWidth()): string {
  const rows = Object.entries(help.flags).map(([name, spec]) => [flagName(name, spec), flagDescription(spec)]) as [
    string,
    string,
  ][];
  rows.push(['-h, --help', 'show this help']);
  return [
    ...wrap(`mrl-cli ${help.name}: ${help.description}`, width),
    '',
    `Usage: mrl-cli ${help.name} ${help.usage ?? '[flags]'}`,
    '',
    'Flags ([...]: the modalities a fit flag applies to):',
    ...twoColumns(rows, width),
    '',
    'Examples:',
    ...help.examples.flatMap((e) => wrap(`$ ${e}`, width - 4).map((l, i) => (i === 0 ? `  ${l}` : `      ${l}`))),
    '',
  ].join('\n');
}

/** `mrl-cli --help`. */
export function renderRootHelp(
  commands: Readonly<Record<string, { description: string }>>,
  examples: readonly string[],
  version: string,
  width = helpWidth(),
): string {
  return [
    `mrl-cli ${version}: train, evaluate and deploy Matryoshka embeddings.`,
    '',
    'Usage: mrl-cli <command> [flags]     (mrl-cli <command> --help for its flags)',
    '',
    'Commands:',
    ...twoColumns(
      Object.entries(commands).map(([name, c]) => [name, c.description]),
      width,
    ),
    '',
    'Examples:',
    ...examples.flatMap((e) => wrap(`$ ${e}`, width - 4).map((l, i) => (i === 0 ? `  ${l}` : `      ${l}`))),
    '',
  ].join('\n');
}

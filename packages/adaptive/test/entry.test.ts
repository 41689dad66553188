import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Every module the file imports (relative ones followed), with the file that imports it. */
function importGraph(entry: string): Map<string, string> {
  const seen = new Set<string>();
  const specifiers = new Map<string, string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const spec = (m[1] ?? m[2]) as string;
      if (spec.startsWith('.')) visit(path.join(path.dirname(file), spec.replace(/\.js$/, '.ts')));
      else specifiers.set(spec, path.relative(src, file));
    }
  };
  visit(path.join(src, entry));
  return specifiers;
}

describe('entry points', () => {
  it('the main entry imports no Node module and nothing of core but its errors', () => {
    const external = importGraph('index.ts');
    const offenders = [...external].filter(([spec]) => spec !== '@mrl/core/errors');
    expect(offenders).toEqual([]);
    expect(external.has('@mrl/core/errors')).toBe(true);
  });

  it('the main entry uses no Node globals', () => {
    // The main entry's sources: src/*.ts and the generated wasm modules in src/wasm/.
    const files = [
      ...fs.readdirSync(src).filter((f) => f.endsWith('.ts')),
      ...fs
        .readdirSync(path.join(src, 'wasm'))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => path.join('wasm', f)),
    ];
    expect(files).toContain(path.join('wasm', 'rerank.wasm.ts'));
    for (const f of files) {
      const text = fs.readFileSync(path.join(src, f), 'utf8');
      expect({ file: f, usesNodeGlobal: /\b(Buffer|process)\./.test(text) }).toEqual({
        file: f,
        usesNodeGlobal: false,
      });
    }
  });

  it('file I/O lives under the Node entry', () => {
    const external = importGraph('node.ts');
    expect(external.has('node:fs')).toBe(true);
  });
});

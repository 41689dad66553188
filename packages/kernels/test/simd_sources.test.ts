import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The generator that turns simd/*.wat into the committed *.wasm.ts modules.
import { compileWat, moduleText, SIMD_DIR } from '../scripts/build-wasm.mjs';

describe('SIMD kernel sources', () => {
  it('every committed .wasm.ts is the compiled form of its .wat (run scripts/build-wasm.mjs after editing one)', async () => {
    const sources = (await readdir(SIMD_DIR)).filter((f: string) => f.endsWith('.wat'));
    expect(sources.length).toBeGreaterThan(0);
    for (const file of sources) {
      const name = file.slice(0, -'.wat'.length);
      const compiled = moduleText(name, await compileWat(await readFile(join(SIMD_DIR, file), 'utf8'), file));
      expect(await readFile(join(SIMD_DIR, `${name}.wasm.ts`), 'utf8'), file).toBe(compiled);
    }
  });
});

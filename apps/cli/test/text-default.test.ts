import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempDir } from './helpers.js';

/** Rows of a printed per-dim table: dim -> the numbers after it. */
function tableRows(stdout: string): Map<number, number[]> {
  const rows = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\d+)((?:\s+\d+\.\d+)+)\s*$/.exec(line);
    if (m !== null) rows.set(Number(m[1]), m[2]!.trim().split(/\s+/).map(Number));
  }
  return rows;
}

describe('mrl-cli fit --modality text, exactly as written', () => {
  // The command the project is known by, with nothing else: the default task (classify, WordNet
  // gloss -> lexicographer class, bert-tiny, one epoch of 625 steps) on 2 cores in about 2 minutes.
  it('trains the default task and beats its printed baseline at every dim', { timeout: 900_000 }, async () => {
    const cwd = await tempDir('text-default');
    const r = await cli(['fit', '--modality', 'text'], { cwd });
    if (r.code !== 0) throw new Error(`fit failed:\n${r.stderr}`);
    expect(r.stdout).toMatch(/^wordnet lexnames \(45 classes\), bert-tiny, d=128, MRL-E: top-1 on 1000 held-out/m);
    const baseline = /^baseline \(majority class, always '[a-z.]+'\): top-1 % (\d+\.\d\d)$/m.exec(r.stdout);
    expect(baseline).not.toBeNull();
    const majority = Number(baseline![1]);
    const rows = tableRows(r.stdout);
    expect([...rows.keys()]).toEqual([8, 16, 32, 64, 128]);
    // Clearly above the majority class at every dim: at least twice its accuracy.
    for (const [dim, [top1]] of rows) {
      expect(top1, `top-1 at dim ${dim}`).toBeGreaterThan(2 * majority);
    }
    // The run folder is where the next: hint says, with the table in metrics.json.
    expect(r.stdout).toContain('next:\n  mrl-cli eval --run-dir runs/text-bert-tiny');
    const metrics = JSON.parse(await readFile(join(cwd, 'runs/text-bert-tiny/metrics.json'), 'utf8'));
    expect(metrics.table.references[0].values.top1).toBeCloseTo(majority / 100, 4);
    // Messages name paths relative to the working folder.
    expect(r.stderr).toContain('-> runs/text-bert-tiny/tokenizer');
    expect(r.stderr).not.toContain(cwd);
    // eval prints the same table again.
    const again = await cli(['eval', '--run-dir', 'runs/text-bert-tiny', '--chart', 'none'], { cwd });
    expect(r.stdout).toContain(again.stdout.trim());
  });
});

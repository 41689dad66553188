import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createRandom, decodeSafetensors } from '@mrl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, tempDir, type Result } from '../test/helpers.js';

/** A tiny MLP run of 48 steps (512 examples, batch 32, 3 epochs), a checkpoint every step. */
const RUN = [
  ...['--train-limit', '512', '--test-limit', '200', '--epochs', '3', '--batch-size', '32', '--dim', '16'],
  ...['--checkpoint-every', '1', '--log-format', 'json'],
];
const TOTAL_STEPS = 48;
const KILLS = 10;

let dir: string;
beforeAll(async () => {
  dir = await tempDir('faults-kill');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs fit and sends SIGKILL as soon as it reports a step >= `killAt`. */
function fitKilledAt(args: string[], killAt: number): Promise<Result> {
  let sent = false;
  return cli(args, {
    onStderr: (all, child) => {
      if (sent) return;
      for (const m of all.matchAll(/"type":"step","step":(\d+)/g)) {
        if (Number(m[1]) >= killAt) {
          sent = true;
          child.kill('SIGKILL');
          return;
        }
      }
    },
  });
}

async function modelWeights(run: string): Promise<Map<string, Float32Array>> {
  const { tensors } = decodeSafetensors(new Uint8Array(await readFile(join(run, 'model/weights.safetensors'))));
  return new Map([...tensors].map(([name, t]) => [name, t.data as Float32Array]));
}

describe('kill -9 at random steps, then --resume', () => {
  it(`${KILLS} kills later, the weights equal those of an uninterrupted run`, async () => {
    const reference = join(dir, 'reference');
    expectOk(await cli(['fit', ...RUN, '--run-dir', reference]));

    const run = join(dir, 'killed');
    const random = createRandom(16);
    // Distinct kill steps in [2, 44], ascending: each resumed process is killed again later on.
    const steps = new Set<number>();
    while (steps.size < KILLS) steps.add(2 + Math.floor(random() * 43));
    const killAt = [...steps].sort((a, b) => a - b);
    let resumes = 0;
    for (const [i, at] of killAt.entries()) {
      const args = i === 0 ? ['fit', ...RUN, '--run-dir', run] : ['fit', '--run-dir', run, '--resume'];
      const r = await fitKilledAt(args, at);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      if (i > 0 && r.stderr.includes('"resumedFrom"')) resumes++;
      if (i > 0) expect(r.stderr).toContain('note: took over a stale lock');
      // Whatever the moment of the kill, every checkpoint under its final name is whole.
      const folder = join(run, 'checkpoints/mrl');
      for (const name of (await readdir(folder)).filter((n) => /^ckpt-\d{8}\.safetensors$/.test(n)))
        expect(decodeSafetensors(new Uint8Array(await readFile(join(folder, name))), name).checksum).toBe('verified');
    }
    expect(resumes).toBeGreaterThan(KILLS / 2);
    const last = expectOk(await cli(['fit', '--run-dir', run, '--resume']));
    expect(last.stderr).toContain('"resumedFrom"');
    expect(last.stderr).toContain(`"step":${TOTAL_STEPS},`);

    const want = await modelWeights(reference);
    const got = await modelWeights(run);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [name, w] of want) expect(Array.from(got.get(name)!), name).toEqual(Array.from(w));
    expect(JSON.parse(await readFile(join(run, 'metrics.json'), 'utf8')).mrl).toEqual(
      JSON.parse(await readFile(join(reference, 'metrics.json'), 'utf8')).mrl,
    );
  });
});

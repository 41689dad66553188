import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertFiniteTensors, decodeSafetensors, encodeSafetensors } from '@mrl/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../src/npy.js';
import { cli, expectOk, expectOneParagraphError, TINY, tempDir } from '../test/helpers.js';

let dir: string;
let base: string;
beforeAll(async () => {
  dir = await tempDir('faults-integrity');
  base = join(dir, 'base');
  expectOk(await cli(['fit', ...TINY, '--checkpoint-every', '2', '--run-dir', base]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function copyOfBase(name: string): Promise<string> {
  const run = join(dir, name);
  await cp(base, run, { recursive: true });
  return run;
}

/** Flips one bit in the middle of the tensor data of a safetensors file. */
async function flipBit(path: string): Promise<void> {
  const bytes = new Uint8Array(await readFile(path));
  bytes[bytes.length - Math.floor(bytes.length / 3)]! ^= 0x10;
  await writeFile(path, bytes);
}

describe('corrupted bytes are caught by the checksum', () => {
  it('a bit flip in a checkpoint stops --resume naming the file; --from-checkpoint uses an older one', async () => {
    const run = await copyOfBase('bad-ckpt');
    const ckpt = join(run, 'checkpoints/mrl/ckpt-00000004.safetensors');
    await flipBit(ckpt);
    const config = await readFile(join(run, 'config.json'), 'utf8');
    const line = expectOneParagraphError(await cli(['fit', '--run-dir', run, '--resume', '--epochs', '2']));
    // The failed resume trained nothing, so its --epochs 2 is not saved.
    expect(await readFile(join(run, 'config.json'), 'utf8')).toBe(config);
    expect(line).toBe(
      `error: ${ckpt} failed its SHA-256 checksum: its bytes changed after it was written (a bit flip, a partial copy or an edit). Restore the file from a copy or write it again; if it is a checkpoint, resume from an older one (--from-checkpoint <step>).`,
    );
    const r = expectOk(await cli(['fit', '--run-dir', run, '--from-checkpoint', '2', '--epochs', '2']));
    expect(r.stderr).toContain(`resuming from ${join(run, 'checkpoints/mrl/ckpt-00000002.safetensors')} (step 2)`);
    // The unusable newer checkpoint is kept aside, out of the resume order.
    expect(await readdir(join(run, 'checkpoints/mrl'))).toContain('ckpt-00000004.safetensors.superseded');
  });

  it('a bit flip in the saved model stops embed naming the file', async () => {
    const run = await copyOfBase('bad-model');
    const weights = join(run, 'model/weights.safetensors');
    await flipBit(weights);
    const line = expectOneParagraphError(await cli(['embed', '--run-dir', run, '--limit', '20', '--formats', 'npy']));
    expect(line).toContain(`error: ${weights} failed its SHA-256 checksum`);
  });

  it('NaN weights with a valid checksum are refused on load, naming the tensor', async () => {
    const run = await copyOfBase('nan-model');
    const weights = join(run, 'model/weights.safetensors');
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(await readFile(weights)));
    const [name, first] = [...tensors.entries()][0]!;
    first.data[3] = Number.NaN;
    await writeFile(weights, encodeSafetensors(tensors, metadata));
    const line = expectOneParagraphError(await cli(['embed', '--run-dir', run, '--limit', '20', '--formats', 'npy']));
    expect(line).toContain(`error: ${weights}: tensor '${name}' holds NaN at element 3 of ${first.data.length};`);
  });
});

describe('non-finite queries', () => {
  it('a NaN query row is refused naming the file and the row, not answered with row 0', async () => {
    const run = await copyOfBase('queries');
    const index = join(dir, 'train');
    expectOk(await cli(['embed', '--run-dir', run, '--split', 'train', '--limit', '300', '--out', index]));
    const queries = new Float32Array(5 * 16).fill(0.25);
    queries[2 * 16 + 5] = Number.NaN;
    const path = join(dir, 'queries.npy');
    await writeFile(path, encodeNpy(queries, [5, 16]));
    const line = expectOneParagraphError(await cli(['search', '--index', `${index}.mrlidx`, '--queries', path]));
    expect(line).toBe(
      `error: ${path}: query row 2 holds NaN at dim 5; a search with it would rank every candidate alike. Embed the queries again with mrl-cli embed, or drop row 2.`,
    );
  });
});

describe('divergence', () => {
  it('rolls back to the newest checkpoint with finite weights and loss, says which; --from-checkpoint picks an older one', async () => {
    const run = join(dir, 'diverge');
    const common = ['--train-limit', '512', '--test-limit', '200', '--batch-size', '64', '--dim', '16'];
    const steady = ['--optimizer', 'sgd', '--checkpoint-every', '1', '--keep-checkpoints', '20'];
    expectOk(await cli(['fit', ...common, ...steady, '--epochs', '1', '--lr', '0.01', '--run-dir', run]));
    // Continue with a learning rate that blows the weights up.
    const r = await cli(['fit', '--run-dir', run, '--resume', '--epochs', '3', '--lr', '1000']);
    expect(r.code).toBe(1);
    // Progress lines come first; the error is one line after them.
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toHaveLength(1);
    const match =
      /^error: the loss became (NaN|-?Infinity) at step (\d+); training stopped before updating the weights\. Rolled back to the last good checkpoint, step (\d+) \(loss [^)]+\): (\S+)\.( \d+ newer checkpoint\(s\) that were not usable were renamed \*\.diverged\.)? Lower the learning rate/.exec(
        errors[0]!,
      );
    expect(match, errors[0]).not.toBeNull();
    const [, , failedStep, goodStep, goodPath] = match!;
    expect(Number(goodStep)).toBeGreaterThanOrEqual(8);
    expect(Number(goodStep)).toBeLessThan(Number(failedStep));
    expect(goodPath).toBe(join(run, `checkpoints/mrl/ckpt-${goodStep!.padStart(8, '0')}.safetensors`));
    // The checkpoint named holds finite weights and a finite loss; none newer is in the resume order.
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(await readFile(goodPath!)));
    expect(() => assertFiniteTensors(tensors, goodPath!)).not.toThrow();
    expect(Number.isFinite(Number(metadata.loss))).toBe(true);
    const listed = (await readdir(join(run, 'checkpoints/mrl'))).filter((n) => n.endsWith('.safetensors'));
    expect(listed.at(-1)).toBe(`ckpt-${goodStep!.padStart(8, '0')}.safetensors`);
    // Finite is not the same as good: go back to the end of the steady epoch instead.
    const resumed = expectOk(await cli(['fit', '--run-dir', run, '--from-checkpoint', '8', '--lr', '0.01']));
    expect(resumed.stderr).toContain(
      `resuming from ${join(run, 'checkpoints/mrl/ckpt-00000008.safetensors')} (step 8)`,
    );
    expect(await readdir(join(run, 'checkpoints/mrl'))).toContain('ckpt-00000009.safetensors.superseded');
    expect(resumed.stderr).toMatch(/\[mrl\] \d+ newer checkpoint\(s\) renamed \*\.superseded, out of the resume order/);
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MrlError } from '../src/errors.js';
import { explainFsError, fsErrorCode } from '../src/io/fs-errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-fs-errors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

describe('explainFsError', () => {
  it('explains real ENOTDIR, EEXIST and EISDIR errors naming the path', async () => {
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    const enotdir = explainFsError(await failure(() => writeFile(join(file, 'inside'), 'y')), 'cannot write');
    expect(enotdir?.kind).toBe('file-system');
    expect(enotdir?.message).toBe(
      `cannot write: a part of the path is a file, not a folder (ENOTDIR) at ${join(file, 'inside')}.`,
    );
    expect(enotdir?.fix).toBe(
      'Rename or remove the file that stands where a folder is expected, or choose another path.',
    );
    const eexist = explainFsError(await failure(() => mkdir(file)));
    expect(eexist?.message).toBe(`something already exists at the path (EEXIST) at ${file}.`);
    const eisdir = explainFsError(await failure(() => writeFile(dir, 'z')), 'saving', dir);
    expect(eisdir?.message).toBe(`saving: the path is a folder, not a file (EISDIR) at ${dir}.`);
  });

  it('explains ENOSPC and EACCES, and leaves other errors alone', () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      syscall: 'write',
    });
    expect(explainFsError(enospc, 'writing the checkpoint', '/runs/x/ckpt.safetensors')?.message).toBe(
      'writing the checkpoint: the disk is full (ENOSPC) at /runs/x/ckpt.safetensors.',
    );
    const eacces = Object.assign(new Error('EACCES: permission denied, open'), {
      code: 'EACCES',
      syscall: 'open',
      path: '/etc/x',
    });
    expect(explainFsError(eacces)?.fix).toContain('Check the permissions');
    // citty's argument errors carry a code too (EARG), but no system call.
    expect(fsErrorCode(Object.assign(new Error('bad'), { code: 'EARG' }))).toBeUndefined();
    expect(explainFsError(new Error('plain'))).toBeUndefined();
    const mrl = new MrlError('invalid-argument', 'already explained');
    expect(explainFsError(mrl)).toBe(mrl);
  });
});

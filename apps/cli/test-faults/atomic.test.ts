import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listCheckpoints,
  loadCheckpoint,
  MrlError,
  nodeFileSystem,
  saveCheckpoint,
  setFileSystemLayer,
  writeFileAtomically,
  type FileSystemLayer,
} from '@mrl/core';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-faults-atomic-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A Node-style system error, as fs/promises raises it. */
function systemError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected, ${syscall}`), { code, syscall, errno: -28 });
}

/**
 * The real file system, except that writes stop after `limit` bytes of a file: `mode` 'short'
 * returns 0 bytes written (a silent short write), 'enospc' throws ENOSPC.
 */
function fullDiskAfter(limit: number, mode: 'short' | 'enospc'): FileSystemLayer {
  return {
    ...nodeFileSystem,
    async create(path) {
      const file = await nodeFileSystem.create(path);
      let written = 0;
      return {
        ...file,
        async write(data, position) {
          const room = Math.max(0, limit - written);
          if (room === 0) {
            if (mode === 'enospc') throw systemError('ENOSPC', 'write');
            return 0;
          }
          const n = await file.write(data.subarray(0, Math.min(room, data.byteLength)), position);
          written += n;
          return n;
        },
      };
    },
  };
}

async function withLayer<T>(layer: FileSystemLayer, fn: () => Promise<T>): Promise<T> {
  const restore = setFileSystemLayer(layer);
  try {
    return await fn();
  } finally {
    restore();
  }
}

async function caught(fn: () => Promise<unknown>): Promise<MrlError> {
  try {
    await fn();
  } catch (error) {
    expect(MrlError.is(error), String(error)).toBe(true);
    return error as MrlError;
  }
  throw new Error('expected an MrlError');
}

const OLD = 'the previous content\n';
const NEW = new Uint8Array(64 * 1024).fill(7);

async function prepare(name: string): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder, { recursive: true });
  const path = join(folder, 'file.bin');
  await writeFile(path, OLD);
  return path;
}

/** The old file is untouched and no temporary file is left beside it. */
async function expectUntouched(path: string): Promise<void> {
  expect(await readFile(path, 'utf8')).toBe(OLD);
  expect((await readdir(join(path, '..'))).sort()).toEqual(['file.bin']);
}

describe('atomic writer under injected faults', () => {
  it('a short write (no progress) fails naming the path; the old file stays and the temp file goes', async () => {
    const path = await prepare('short');
    const error = await caught(() => withLayer(fullDiskAfter(1000, 'short'), () => writeFileAtomically(path, NEW)));
    expect(error.kind).toBe('file-system');
    expect(error.message).toBe(
      `cannot write ${path}: only 1000 of 65536 bytes could be written (is the disk full?); file.bin keeps its previous content.`,
    );
    await expectUntouched(path);
  });

  it('ENOSPC mid-file fails with the disk-full paragraph; the old file stays and the temp file goes', async () => {
    const path = await prepare('enospc');
    const error = await caught(() => withLayer(fullDiskAfter(4096, 'enospc'), () => writeFileAtomically(path, NEW)));
    expect(error.message).toMatch(
      /^cannot write .*file\.bin \(4096 of 65536 bytes written\): the disk is full \(ENOSPC\); file\.bin keeps its previous content\.$/,
    );
    expect(error.fix).toContain('Free space');
    await expectUntouched(path);
  });

  it('a file system that reports a smaller file than written is caught before the rename', async () => {
    const path = await prepare('size');
    const lying: FileSystemLayer = {
      ...nodeFileSystem,
      async create(p) {
        const file = await nodeFileSystem.create(p);
        return { ...file, size: async () => (await file.size()) - 1 };
      },
    };
    const error = await caught(() => withLayer(lying, () => writeFileAtomically(path, NEW)));
    expect(error.message).toContain('the file system holds 65535 bytes of the 65536 written');
    await expectUntouched(path);
  });

  it('a failing rename (EACCES) leaves the old file and removes the temp file', async () => {
    const path = await prepare('rename');
    const layer: FileSystemLayer = {
      ...nodeFileSystem,
      rename: async () => {
        throw systemError('EACCES', 'rename');
      },
    };
    const error = await caught(() => withLayer(layer, () => writeFileAtomically(path, NEW)));
    expect(error.message).toContain('permission denied (EACCES)');
    await expectUntouched(path);
  });

  it('legal short writes (progress each time) are completed, not refused', async () => {
    const path = await prepare('partial');
    const dribble: FileSystemLayer = {
      ...nodeFileSystem,
      async create(p) {
        const file = await nodeFileSystem.create(p);
        return { ...file, write: (data, position) => file.write(data.subarray(0, 1000), position) };
      },
    };
    await withLayer(dribble, () => writeFileAtomically(path, NEW));
    expect(new Uint8Array(await readFile(path))).toEqual(NEW);
    expect(await readdir(join(path, '..'))).toEqual(['file.bin']);
  });

  it('a checkpoint written onto a full disk leaves the previous checkpoint loadable', async () => {
    const ckdir = join(dir, 'ckpt');
    const w = tf.variable(tf.tensor2d([1, 2, 3, 4], [2, 2]), true, 'fault_w');
    const variables = new Map([['w', w]]);
    await saveCheckpoint({ dir: ckdir, step: 1, variables, loss: 0.5 });
    w.assign(tf.tensor2d([5, 6, 7, 8], [2, 2]));
    const error = await caught(() =>
      withLayer(fullDiskAfter(100, 'enospc'), () => saveCheckpoint({ dir: ckdir, step: 2, variables, loss: 0.4 })),
    );
    expect(error.message).toContain(`${join(ckdir, 'ckpt-00000002.safetensors')} (100 of`);
    expect((await listCheckpoints(ckdir)).map((c) => c.step)).toEqual([1]);
    expect(await readdir(ckdir)).toEqual(['ckpt-00000001.safetensors']);
    const loaded = await loadCheckpoint(join(ckdir, 'ckpt-00000001.safetensors'), variables);
    expect(loaded.metadata.loss).toBe('0.5');
    expect(Array.from(await w.data())).toEqual([1, 2, 3, 4]);
    w.dispose();
  });
});

/**
 * A real full disk: a 256 KiB tmpfs. Mounting needs CAP_SYS_ADMIN; where the machine does not
 * allow it, the same assertions run on the injected ENOSPC instead (and the test says so).
 */
describe('atomic writer on a real full disk', () => {
  it('ENOSPC on a small tmpfs keeps the old file and leaves no temporary file', async () => {
    const mountPoint = join(dir, 'tmpfs');
    await mkdir(mountPoint);
    let mounted = false;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'ignore' });
      mounted = true;
    } catch {
      console.warn('tmpfs mount not permitted here: the full disk is injected through the file-system seam');
    }
    try {
      const path = join(mountPoint, 'file.bin');
      await writeFile(path, OLD);
      const big = new Uint8Array(1024 * 1024).fill(1);
      const error = await caught(() =>
        mounted
          ? writeFileAtomically(path, big)
          : withLayer(fullDiskAfter(256 * 1024, 'enospc'), () => writeFileAtomically(path, big)),
      );
      expect(error.message).toContain('the disk is full (ENOSPC)');
      expect(error.message).toContain(`cannot write ${path}`);
      await expectUntouched(path);
      // With the space back, the same write goes through.
      await writeFileAtomically(path, 'small\n');
      expect(await readFile(path, 'utf8')).toBe('small\n');
    } finally {
      if (mounted) execFileSync('umount', [mountPoint]);
    }
    expect(existsSync(join(mountPoint, 'file.bin'))).toBe(!mounted);
  });
});

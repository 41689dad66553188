import * as fs from 'node:fs';
import * as os from 'node:os';
import { MrlError } from '@mrl/core/errors';

/*
 * One writer per index file: `<file>.lock` is created exclusively (O_CREAT | O_EXCL) and holds
 * the writer's pid and host. A second writer finds it and is refused, naming the holder; a lock
 * left by a process that no longer runs on this host is stale and taken over. Readers take no
 * lock: the atomic rename means they see the old file or the new one.
 */

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the writer lock of `file` and returns the function that releases it.
 *
 * @example
 * ```ts
 * const release = acquireWriterLock('products.mrlidx');
 * try { saveIndex(index, 'products.mrlidx'); } finally { release(); }
 * ```
 */
export function acquireWriterLock(file: string): () => void {
  const lock = `${file}.lock`;
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname() });
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(lock, 'wx');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new MrlError(
          'missing-file',
          `cannot write index file ${file}: its directory does not exist.`,
          'Create the directory first.',
          {
            cause: e,
          },
        );
      }
      if (code !== 'EEXIST') throw e;
      let holder: { pid?: unknown; host?: unknown } = {};
      try {
        holder = JSON.parse(fs.readFileSync(lock, 'utf8')) as typeof holder;
      } catch {
        holder = {};
      }
      const pid = typeof holder.pid === 'number' ? holder.pid : undefined;
      const sameHost = holder.host === os.hostname();
      if (pid !== undefined && sameHost && !alive(pid) && attempt === 0) {
        fs.rmSync(lock, { force: true }); // stale: its writer is gone
        continue;
      }
      throw new MrlError(
        'invalid-argument',
        `index file ${file} is being written by another writer (process ${pid ?? 'unknown'} on ${String(holder.host ?? 'an unknown host')}, lock file ${lock}).`,
        `Wait for that writer to finish; if it is gone, delete ${lock}.`,
      );
    }
    try {
      fs.writeSync(fd, mine);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      fs.rmSync(lock, { force: true });
    };
  }
  throw new MrlError('invalid-argument', `cannot lock ${file}.`, `Delete ${lock} if no writer runs.`);
}

import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { explainFsError, MrlError } from '@mrl/core';
import { displayPath } from './run-folder.js';

/** The lock file of a run folder. */
export const LOCK_FILE = '.mrl-lock';

/** What a lock file holds: who holds the folder. */
export interface RunLock {
  pid: number;
  host: string;
  command: string;
  startedAt: string;
}

/** Whether process `pid` runs on this machine (EPERM: it runs, as another user). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): RunLock | undefined {
  try {
    const lock = JSON.parse(readFileSync(path, 'utf8')) as Partial<RunLock>;
    return typeof lock.pid === 'number' && typeof lock.host === 'string' ? (lock as RunLock) : undefined;
  } catch {
    return undefined;
  }
}

const held = new Set<string>();
let exitHookInstalled = false;

/** Removes the locks this process holds (also on process.exit and after an uncaught error). */
export function releaseRunLocks(): void {
  for (const path of held) {
    try {
      if (readLock(path)?.pid === process.pid) unlinkSync(path);
    } catch {
      // Already gone: nothing to release.
    }
  }
  held.clear();
}

/**
 * Takes the lock of a run folder for `command` (fit, embed): `<run-dir>/.mrl-lock` created
 * exclusively, holding pid, host and start time. A lock whose process is gone on this host
 * (kill -9, power cut) is stale and taken over with a note; a live one, or one from another host,
 * is refused with one MrlError naming the holder. Released when the process exits.
 */
export async function acquireRunLock(runDir: string, command: string): Promise<void> {
  const path = join(runDir, LOCK_FILE);
  if (held.has(path)) return;
  const mine: RunLock = { pid: process.pid, host: hostname(), command, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(mine)}\n`, { flag: 'wx' });
      held.add(path);
      if (!exitHookInstalled) {
        process.on('exit', releaseRunLocks);
        exitHookInstalled = true;
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw explainFsError(error, 'cannot lock the run folder', path) ?? error;
    }
    const other = readLock(path);
    if (other !== undefined && (other.host !== mine.host || isRunning(other.pid))) {
      const where = other.host === mine.host ? `process ${other.pid}` : `process ${other.pid} on host ${other.host}`;
      throw new MrlError(
        'run-folder-busy',
        `the run folder ${runDir} is in use: mrl-cli ${other.command} (${where}, since ${other.startedAt}) holds ${displayPath(path)}.`,
        other.host === mine.host
          ? 'Wait for it to finish (or stop it with Ctrl-C), or use another --run-dir.'
          : `If no mrl-cli runs on ${other.host} any more, delete ${path} and run again.`,
      );
    }
    // Stale (its process is gone) or unreadable (torn by a crash): move it aside, then retry the
    // exclusive create, so that of two processes clearing the same stale lock only one wins.
    const aside = `${path}.stale-${randomBytes(4).toString('hex')}`;
    try {
      renameSync(path, aside);
      const moved = readLock(aside);
      if (moved !== undefined && (moved.pid !== other?.pid || moved.startedAt !== other.startedAt)) {
        // Another process replaced the stale lock with its own in between: give it back.
        renameSync(aside, path);
        continue;
      }
      unlinkSync(aside);
    } catch {
      // Another process moved it first: retry the create, which tells who holds it now.
    }
    process.stderr.write(
      `note: took over a stale lock of ${displayPath(runDir)}${other === undefined ? '' : ` (mrl-cli ${other.command}, process ${other.pid}, is no longer running)`}\n`,
    );
  }
  throw new MrlError(
    'run-folder-busy',
    `could not lock the run folder ${runDir}: other processes keep taking ${LOCK_FILE}.`,
    'Make sure only one mrl-cli fit or embed uses this folder, then run again.',
  );
}

import { MrlError } from '../errors.js';

/** The file-system error codes this project explains in words. */
const EXPLAINED: Record<string, { what: string; fix: string }> = {
  EACCES: {
    what: 'permission denied',
    fix: 'Check the permissions of the path and its folders (ls -ld), or choose a folder you can write to.',
  },
  EPERM: {
    what: 'the operation is not permitted',
    fix: 'Check the permissions and attributes of the path, or choose another folder.',
  },
  EROFS: {
    what: 'the file system is read-only',
    fix: 'Choose a folder on a writable file system.',
  },
  ENOSPC: {
    what: 'the disk is full',
    fix: 'Free space on that file system (df -h shows it) or choose a folder on another one, then run again.',
  },
  EDQUOT: {
    what: 'the disk quota is exhausted',
    fix: 'Free space within your quota or choose a folder on another file system, then run again.',
  },
  ENOTDIR: {
    what: 'a part of the path is a file, not a folder',
    fix: 'Rename or remove the file that stands where a folder is expected, or choose another path.',
  },
  EISDIR: {
    what: 'the path is a folder, not a file',
    fix: 'Give the path of a file, not of a folder.',
  },
  EEXIST: {
    what: 'something already exists at the path',
    fix: 'Move or remove what is there, or choose another path.',
  },
  ENOENT: {
    what: 'no such file or folder',
    fix: 'Check the path for typos; relative paths start from the current folder.',
  },
  EMFILE: {
    what: 'too many files are open',
    fix: 'Raise the limit (ulimit -n) or close other programs, then run again.',
  },
  EIO: {
    what: 'the device reported an input/output error',
    fix: 'Check the disk (dmesg, smartctl) and copy the run folder elsewhere before it gets worse.',
  },
};

/** The error code of a Node file-system error, if `error` is one. */
export function fsErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  // Node's system errors carry the failed call (`syscall`); other libraries reuse `code` (citty: EARG).
  const { code, syscall } = error as NodeJS.ErrnoException;
  return typeof code === 'string' && typeof syscall === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
}

/**
 * Turns a Node file-system error into one MrlError paragraph: what happened, the path, what to do.
 * `doing` says what was being done (`writing the checkpoint`); `path` defaults to the error's own.
 * Returns undefined for anything that is not a file-system error.
 *
 * @example
 * ```ts
 * try { await mkdir('/proc/x'); } catch (e) { throw explainFsError(e, 'creating the run folder') ?? e; }
 * ```
 */
export function explainFsError(error: unknown, doing?: string, path?: string): MrlError | undefined {
  if (MrlError.is(error)) return error;
  const code = fsErrorCode(error);
  if (code === undefined) return undefined;
  const errno = error as NodeJS.ErrnoException & { dest?: string };
  const where = path ?? errno.path;
  const dest = errno.dest === undefined ? '' : ` -> ${errno.dest}`;
  const known = EXPLAINED[code];
  const what = known?.what ?? (errno.message.split(/,\s*/)[1] ?? errno.message).replace(/^\w+:\s*/, '');
  return new MrlError(
    'file-system',
    `${doing === undefined ? '' : `${doing}: `}${what} (${code})${where === undefined ? '' : ` at ${where}${dest}`}.`,
    known?.fix ?? 'Check the path and the file system it lives on, then run again.',
    { cause: error },
  );
}

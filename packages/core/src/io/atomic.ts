import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MrlError } from '../errors.js';
import { explainFsError } from './fs-errors.js';

/** An open file as the atomic writer uses it. */
export interface WritableFile {
  /** Writes from `data` at file `position`; returns the bytes written (a short write is legal). */
  write(data: Uint8Array, position: number): Promise<number>;
  /** The file's size in bytes as the file system reports it. */
  size(): Promise<number>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The file-system calls of {@link writeFileAtomically}: the seam through which tests inject
 * short writes, a full disk or a failing rename without touching the real disk's limits.
 */
export interface FileSystemLayer {
  mkdir(path: string): Promise<void>;
  /** Creates `path`, failing if it exists. */
  create(path: string): Promise<WritableFile>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes a rename inside `path` durable (fsync of the folder); a no-op where folders cannot be synced. */
  syncFolder(path: string): Promise<void>;
}

/** The real file system (node:fs/promises). */
export const nodeFileSystem: FileSystemLayer = {
  async mkdir(path) {
    await mkdir(path, { recursive: true });
  },
  async create(path) {
    const handle = await open(path, 'wx', 0o644);
    return {
      write: async (data, position) => (await handle.write(data, 0, data.byteLength, position)).bytesWritten,
      size: async () => (await handle.stat()).size,
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  async syncFolder(path) {
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(path, 'r');
      await handle.sync();
    } catch (error) {
      // Some platforms (Windows, some network file systems) cannot open or fsync a folder.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw error;
    } finally {
      await handle?.close();
    }
  },
};

let activeLayer: FileSystemLayer = nodeFileSystem;

/**
 * Replaces the file-system layer of every atomic write in this process (fault-injection tests);
 * returns a function that restores the previous one.
 *
 * @example
 * ```ts
 * const restore = setFileSystemLayer({ ...nodeFileSystem, create: async (p) => fullDisk(p) });
 * try { await writeFileAtomically('out.bin', bytes); } finally { restore(); }
 * ```
 */
export function setFileSystemLayer(layer: FileSystemLayer): () => void {
  const previous = activeLayer;
  activeLayer = layer;
  return () => {
    activeLayer = previous;
  };
}

/**
 * Writes a file so that readers see the old content or the new, never a torn one: the bytes go to
 * a temporary file beside the target, the byte count is checked (a write that makes no progress
 * is a full disk), the file is fsynced, renamed over the target, and the folder is fsynced so the
 * rename survives a power cut. On any failure the target keeps its old content, the temporary
 * file is removed, and the error is one MrlError naming the path. Creates the parent folder.
 */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const fs = activeLayer;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const folder = dirname(path);
  const temp = join(folder, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const kept = `${basename(path)} keeps its previous content`;
  try {
    await fs.mkdir(folder);
  } catch (error) {
    throw explainFsError(error, `cannot create the folder for ${path}`, folder) ?? error;
  }
  let file: WritableFile | undefined;
  let written = 0;
  try {
    file = await fs.create(temp);
    while (written < bytes.byteLength) {
      const n = await file.write(bytes.subarray(written), written);
      if (!(n > 0)) {
        throw new MrlError(
          'file-system',
          `cannot write ${path}: only ${written} of ${bytes.byteLength} bytes could be written (is the disk full?); ${kept}.`,
          'Free space on that file system (df -h shows it) or choose a folder on another one, then run again.',
        );
      }
      written += n;
    }
    const size = await file.size();
    if (size !== bytes.byteLength) {
      throw new MrlError(
        'file-system',
        `cannot write ${path}: the file system holds ${size} bytes of the ${bytes.byteLength} written; ${kept}.`,
        'Check the disk (df -h, dmesg) and run again.',
      );
    }
    await file.sync();
    await file.close();
    file = undefined;
    await fs.rename(temp, path);
  } catch (error) {
    if (file !== undefined) await file.close().catch(() => undefined);
    await fs.unlink(temp).catch(() => undefined);
    if (MrlError.is(error)) throw error;
    const explained = explainFsError(error, `cannot write ${path} (${written} of ${bytes.byteLength} bytes written)`);
    if (explained === undefined) throw error;
    throw new MrlError('file-system', `${explained.message.replace(/\.$/, '')}; ${kept}.`, explained.fix, {
      cause: error,
    });
  }
  try {
    await fs.syncFolder(folder);
  } catch (error) {
    throw explainFsError(error, `wrote ${path} but could not make it durable (fsync of its folder)`, folder) ?? error;
  }
}

import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { MrlError } from '@mrl/core';

/** What `fit` writes to `<run-dir>/config.json`: the resolved flags and what they resolved to. */
export interface RunConfig {
  /** Flag values by flag name (paths absolute). */
  flags: Record<string, unknown>;
  encoder?: { name: string; config: Record<string, unknown> };
  createdAt: string;
  mrlCli: string;
}

export async function readJsonFile<T>(path: string, what: string, fix: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new MrlError('missing-file', `${what} ${path} does not exist.`, fix, { cause });
  }
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new MrlError('corrupt-file', `${what} ${path} is not valid JSON: ${(cause as Error).message}.`, fix, {
      cause,
    });
  }
}

/** The saved run config, or undefined when the folder has none. */
export async function readRunConfig(runDir: string): Promise<RunConfig | undefined> {
  try {
    await readFile(join(runDir, 'config.json'));
  } catch {
    return undefined;
  }
  return readJsonFile<RunConfig>(
    join(runDir, 'config.json'),
    'the run config',
    'Delete the run folder and train again with mrl-cli fit.',
  );
}

/** `--run-dir` is required for commands that read a run; the error says how to get one. */
export function requireRunDir(runDir: string | undefined, command: string): string {
  if (runDir === undefined) {
    throw new MrlError(
      'invalid-argument',
      `mrl-cli ${command} needs --run-dir, the folder a fit wrote.`,
      `Run mrl-cli fit --run-dir runs/my-run first, then mrl-cli ${command} --run-dir runs/my-run.`,
    );
  }
  return runDir;
}

/** A path as the user likes to read it: relative below the current folder, absolute elsewhere. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

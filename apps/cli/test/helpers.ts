import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');
export const BIN = join(REPO, 'apps/cli/dist/bin.js');
export const PLUGIN = join(REPO, 'examples/custom-encoder/my-encoder.js');
/** Small, fast training settings shared by the tests. */
export const TINY = ['--train-limit', '512', '--test-limit', '500', '--epochs', '1', '--dim', '16'];

if (!existsSync(BIN))
  throw new Error(`${BIN} is missing: run pnpm exec tsc -b tsconfig.build.json in the repo root first`);

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real binary; `onStderr` sees stderr as it arrives (and may signal the child). */
export function cli(
  args: readonly string[],
  options: { cwd?: string; onStderr?: (all: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr, child);
    });
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

export async function tempDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `mrl-cli-${name}-`));
}

/** The one-paragraph error contract: a single `error:` line, no stack frames. */
export function expectOneParagraphError(result: Result): string {
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('backend:') && !l.startsWith('data:'));
  if (result.code === 0) throw new Error(`expected a failure, got exit 0\n${result.stderr}`);
  if (lines.length !== 1 || !lines[0]!.startsWith('error: '))
    throw new Error(`expected one error line, got:\n${result.stderr}`);
  if (/\n\s+at /.test(result.stderr)) throw new Error(`stack trace printed:\n${result.stderr}`);
  return lines[0]!;
}

/** Exit code 0, or a failure that shows what the command printed. */
export function expectOk(result: Result): Result {
  if (result.code !== 0) throw new Error(`exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result;
}

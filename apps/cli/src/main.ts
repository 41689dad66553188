import { MrlError } from '@mrl/core';
import { defineCommand, runMain } from 'citty';

const root = defineCommand({
  meta: { name: 'mrl-cli', description: 'Train, evaluate and deploy Matryoshka embeddings.' },
  subCommands: {
    fit: () => import('./commands/fit.js').then((m) => m.fitCommand),
  },
});

/** Prints an error as one paragraph with its fix; the stack only with --debug. */
export function reportError(error: unknown, debug: boolean): void {
  if (MrlError.is(error)) {
    process.stderr.write(`error: ${error.message}${error.fix === undefined ? '' : ` ${error.fix}`}\n`);
  } else {
    process.stderr.write(`error: ${(error as Error).message ?? String(error)}\n`);
  }
  if (debug && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  try {
    await runMain(root, { rawArgs: argv });
  } catch (error) {
    reportError(error, debug);
    process.exitCode = 1;
  }
}

import { explainFsError } from '@mrl/core/fs-errors';
import { defineCommand, runCommand } from 'citty';
import type { MrlCommand } from './command.js';
import { renderCommandHelp, renderRootHelp } from './help.js';

/** Subcommands, each loaded only when it runs (or its help is shown). */
const COMMANDS: Record<string, { description: string; load: () => Promise<MrlCommand> }> = {
  fit: {
    description: 'train a Matryoshka model (and baselines) and write a run folder',
    load: () => import('./commands/fit.js').then((m) => m.fitCommand),
  },
  eval: {
    description: 'per-dim table (text, JSON, CSV) and accuracy-vs-dim chart of a run',
    load: () => import('./commands/eval.js').then((m) => m.evalCommand),
  },
  embed: {
    description: 'write embeddings of a data set (.npy, safetensors, search index)',
    load: () => import('./commands/embed.js').then((m) => m.embedCommand),
  },
  search: {
    description: 'adaptive retrieval over an index: exact, shortlist/re-rank, funnel',
    load: () => import('./commands/search.js').then((m) => m.searchCommand),
  },
  report: {
    description: 'Markdown report of one or more run folders',
    load: () => import('./commands/report.js').then((m) => m.reportCommand),
  },
  models: {
    description: 'list registered encoders and objectives (with plug-ins)',
    load: () => import('./commands/models.js').then((m) => m.modelsCommand),
  },
  index: {
    description: 'copy an index into PostgreSQL/pgvector (PGlite or a server) with an HNSW index on a prefix',
    load: () => import('./commands/db-index.js').then((m) => m.indexCommand),
  },
  export: {
    description: 'write a run as a transformers.js / ONNX, Hugging Face or sentence-transformers folder',
    load: () => import('./commands/export.js').then((m) => m.exportCommand),
  },
  adapt: {
    description: 'train a Matryoshka-Adaptor that makes existing embeddings nested; per-dim table vs PCA',
    load: () => import('./commands/adapt.js').then((m) => m.adaptCommand),
  },
};

const VERSION = '0.1.0';
const ROOT_EXAMPLES = [
  'mrl-cli fit --modality vision --model mlp --data fashion-mnist --dim 64 --compare ff',
  'mrl-cli fit --modality text',
  'mrl-cli eval --run-dir runs/vision-mlp --format csv',
  'mrl-cli embed --run-dir runs/vision-mlp --split train --dim 32',
  'mrl-cli models --plugin ./my-encoder.js',
];

const root = defineCommand({
  meta: { name: 'mrl-cli', version: VERSION, description: 'Train, evaluate and deploy Matryoshka embeddings.' },
  subCommands: Object.fromEntries(
    Object.entries(COMMANDS).map(([name, c]) => [
      name,
      () => c.load().then((cmd) => ({ ...cmd, meta: { ...(cmd.meta as object), description: c.description } })),
    ]),
  ),
});

// ANSI colour codes citty puts into its own messages.
// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

// Checked by its brand (what MrlError.is does) so that --help never loads the tensor engine.
interface MrlErrorLike {
  message: string;
  fix?: string;
}
const isMrlError = (e: unknown): e is MrlErrorLike =>
  typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[Symbol.for('mrl/MrlError')] === true;

/** Prints an error as one paragraph with its fix; the stack only with --debug. */
export function reportError(error: unknown, debug: boolean, command?: string): void {
  // A file-system error (EACCES, ENOSPC, ENOTDIR, EEXIST, ...) becomes a paragraph naming the path.
  const explained = isMrlError(error) ? undefined : explainFsError(error);
  if (explained !== undefined) {
    process.stderr.write(`error: ${explained.message} ${explained.fix}\n`);
  } else if (isMrlError(error)) {
    process.stderr.write(`error: ${error.message}${error.fix === undefined ? '' : ` ${error.fix}`}\n`);
  } else if (error instanceof Error && error.name === 'CLIError') {
    // citty's own argument errors (a bad enum value, an unknown command).
    const help = command === undefined ? 'mrl-cli --help' : `mrl-cli ${command} --help`;
    process.stderr.write(`error: ${stripAnsi(error.message)} Run ${help} to see the choices.\n`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`error: ${message} This is unexpected; run again with --debug and report the stack trace.\n`);
  }
  if (debug && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const name = argv.find((a) => !a.startsWith('-'));
  const known = name !== undefined && Object.hasOwn(COMMANDS, name);
  try {
    if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
      // Our own plain-text help: no colour, lines within 100 columns.
      if (known) process.stdout.write(renderCommandHelp((await COMMANDS[name]!.load()).mrlHelp));
      else process.stdout.write(renderRootHelp(COMMANDS, ROOT_EXAMPLES, VERSION));
      return;
    }
    if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
      process.stdout.write(`${VERSION}\n`);
      return;
    }
    if (!known) {
      const { MrlError } = await import('@mrl/core');
      throw new MrlError(
        'unknown-name',
        `unknown command '${name ?? argv[0]}'.`,
        `Commands: ${Object.keys(COMMANDS).join(', ')}; run mrl-cli --help.`,
      );
    }
    await runCommand(root, { rawArgs: argv });
  } catch (error) {
    reportError(error, debug, known ? name : undefined);
    process.exitCode = 1;
  }
}

import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import {
  listCheckpoints,
  MrlError,
  runTableDims,
  runTableHeading,
  writeFileAtomically,
  type RunTable,
} from '@mrl/core';
import { defineCommand, type ArgsDef, type CommandDef } from 'citty';
import type { MrlCommand } from '../command.js';
import { cittyArgs, COMMON_FLAGS, REPORT_FLAGS, RUN_DIR_FLAG, resolveFlags } from '../flags.js';
import { readRunMetrics } from '../metrics-file.js';
import { readRunConfig } from '../run-folder.js';
import { displayPath } from '../run-folder.js';

const FLAGS = { ...RUN_DIR_FLAG, ...REPORT_FLAGS, ...COMMON_FLAGS };
const pct = (v: number | undefined): string => (v === undefined ? '' : (100 * v).toFixed(2));

/** Markdown form of a run's table: the same heading, columns and model order as `fit` and `eval`. */
function markdownTable(table: RunTable): string[] {
  const header = ['dim', ...table.series.flatMap((s) => table.metrics.map((m) => `${s.label} ${m.header}`))];
  const cell = (kind: 'percent' | 'score', v: number | undefined): string =>
    v === undefined ? '' : kind === 'percent' ? (100 * v).toFixed(2) : v.toFixed(4);
  const rows = runTableDims(table).map((dim) => {
    const cells = table.series.flatMap((s) =>
      table.metrics.map((m) => cell(m.kind, s.rows.find((r) => r.dim === dim)?.values[m.key])),
    );
    return `| ${dim} | ${cells.join(' | ')} |`;
  });
  const references = (table.references ?? []).map(
    (ref) =>
      `Baseline (${ref.label}): ${table.metrics
        .filter((m) => ref.values[m.key] !== undefined)
        .map((m) => `${m.header} ${cell(m.kind, ref.values[m.key])}`)
        .join(', ')}.`,
  );
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---:').join('|')}|`,
    ...rows,
    ...(references.length > 0 ? ['', ...references] : []),
    ...(table.notes ?? []).flatMap((n) => ['', '```', n, '```']),
  ];
}

/** Numeric suffixes in nesting order: ff-8, ff-16, ff-32 (not ff-16, ff-32, ff-8). */
const byNesting = (a: string, b: string): number => {
  const split = (s: string): [string, number] => {
    const m = /^(.*?)(\d+)$/.exec(s);
    return m === null ? [s, -1] : [m[1]!, Number(m[2])];
  };
  const [pa, na] = split(a);
  const [pb, nb] = split(b);
  return pa === 'mrl' && pb !== 'mrl' ? -1 : pb === 'mrl' && pa !== 'mrl' ? 1 : pa.localeCompare(pb) || na - nb;
};

async function runSection(
  runDir: string,
  cwd: string,
): Promise<{ text: string; model: string; best: Record<string, number | undefined>; label: string; metric: string }> {
  const { table } = await readRunMetrics(runDir);
  const config = await readRunConfig(runDir);
  const checkpoints: string[] = [];
  try {
    for (const name of (await readdir(join(runDir, 'checkpoints'))).sort(byNesting)) {
      const list = await listCheckpoints(join(runDir, 'checkpoints', name));
      if (list.length > 0) checkpoints.push(`${name} (step ${list.at(-1)!.step})`);
    }
  } catch {
    // no checkpoints folder
  }
  const hasModel = await stat(join(runDir, 'model', 'config.json')).then(
    () => true,
    () => false,
  );
  const label = relative(cwd, runDir) || '.';
  const flags = config?.flags ?? {};
  const settings = [
    'modality',
    'task',
    'model',
    'data',
    'dim',
    'epochs',
    'steps',
    'batch-size',
    'optimizer',
    'lr',
    'head',
    'compare',
    'seed',
  ]
    .filter((k) => flags[k] !== undefined)
    .map((k) => `${k}=${JSON.stringify(flags[k])}`);
  const chart = await stat(join(runDir, 'accuracy-vs-dim.svg')).then(
    () => `\n![accuracy vs dimension](${join(label, 'accuracy-vs-dim.svg')})\n`,
    () => '',
  );
  const text = [
    `## ${label}: ${runTableHeading(table)}`,
    '',
    settings.length > 0 ? `Settings: ${settings.join(', ')}` : 'Settings: (no config.json)',
    `Checkpoints: ${checkpoints.join(', ') || 'none'}; final model: ${hasModel ? join(label, 'model') : 'none'}`,
    '',
    ...markdownTable(table),
    chart,
  ].join('\n');
  const first = table.metrics[0]!;
  const mrl = table.series[0]!.rows;
  const full = mrl.at(-1);
  const smallest = mrl[0];
  return {
    text,
    model: table.model,
    label,
    metric: first.header,
    best: {
      fullDim: full?.dim,
      full: full?.values[first.key],
      smallDim: smallest?.dim,
      small: smallest?.values[first.key],
    },
  };
}

const command: CommandDef = defineCommand({
  meta: {
    name: 'report',
    description:
      'Write a Markdown report of one or more run folders: settings, checkpoints, the per-dim table of MRL and baselines, the chart (after mrl-cli eval), and a comparison when several runs are given.\n\nExamples:\n  $ mrl-cli report --run-dir runs/vision-mlp\n  $ mrl-cli report runs/mlp runs/resnet --out report.md\n',
  },
  args: {
    ...cittyArgs(FLAGS),
    runs: { type: 'positional', required: false, description: 'run folders (besides --run-dir)' },
  } as ArgsDef,
  async run({ args, rawArgs }) {
    const options = await resolveFlags(FLAGS, args as Record<string, unknown>, rawArgs, 'report');
    const dirs = [
      ...(options['run-dir'] === undefined ? [] : [options['run-dir']]),
      ...(args._ as string[]).map((d) => resolve(d)),
    ];
    if (dirs.length === 0)
      throw new MrlError(
        'invalid-argument',
        'mrl-cli report needs at least one run folder.',
        'Pass --run-dir runs/my-run, or the folders as arguments.',
      );
    const cwd = options.out === undefined ? process.cwd() : resolve(options.out, '..');
    const sections = [];
    for (const dir of dirs) sections.push(await runSection(resolve(dir), cwd));
    const parts = ['# mrl report', '', `Generated ${new Date().toISOString()} by mrl-cli 0.1.0.`, ''];
    if (sections.length > 1) {
      parts.push('| run | model | metric | smallest dim | MRL | full dim | MRL |', '|---|---|---|---:|---:|---:|---:|');
      for (const s of sections)
        parts.push(
          `| ${s.label} | ${s.model} | ${s.metric} | ${s.best.smallDim ?? ''} | ${pct(s.best.small)} | ${s.best.fullDim ?? ''} | ${pct(s.best.full)} |`,
        );
      parts.push('');
    }
    for (const s of sections) parts.push(s.text, '');
    const markdown = `${parts.join('\n').trimEnd()}\n`;
    if (options.out === undefined) process.stdout.write(markdown);
    else {
      await writeFileAtomically(options.out, markdown);
      process.stderr.write(`report: ${displayPath(options.out)}\n`);
    }
  },
});

export const reportCommand: MrlCommand = Object.assign(command, {
  mrlHelp: {
    name: 'report',
    description:
      'Write a Markdown report of one or more run folders: settings, checkpoints, the per-dim table of MRL ' +
      'and baselines (the one fit and eval print), the chart (after mrl-cli eval), and a comparison when ' +
      'several runs are given.',
    examples: ['mrl-cli report --run-dir runs/vision-mlp', 'mrl-cli report runs/mlp runs/resnet --out report.md'],
    flags: FLAGS,
    usage: '[flags] [run folders...]',
  },
});

import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { listCheckpoints, MrlError, writeFileAtomically } from '@mrl/core';
import { defineCommand, type ArgsDef, type CommandDef } from 'citty';
import { cittyArgs, COMMON_FLAGS, REPORT_FLAGS, RUN_DIR_FLAG, resolveFlags } from '../flags.js';
import { readRunMetrics } from '../metrics-file.js';
import { readRunConfig } from '../run-folder.js';
import { displayPath } from '../run-folder.js';

const FLAGS = { ...RUN_DIR_FLAG, ...REPORT_FLAGS, ...COMMON_FLAGS };
const pct = (v: number | undefined): string => (v === undefined ? '' : (100 * v).toFixed(2));

async function runSection(
  runDir: string,
  cwd: string,
): Promise<{ text: string; model: string; best: Record<string, number | undefined>; label: string }> {
  const metrics = await readRunMetrics(runDir);
  const config = await readRunConfig(runDir);
  const checkpoints: string[] = [];
  try {
    for (const name of await readdir(join(runDir, 'checkpoints'))) {
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
    'model',
    'data',
    'dim',
    'epochs',
    'batch-size',
    'optimizer',
    'lr',
    'head',
    'compare',
    'seed',
  ]
    .filter((k) => flags[k] !== undefined)
    .map((k) => `${k}=${JSON.stringify(flags[k])}`);
  const header = [
    'dim',
    ...metrics.series.flatMap((s) => [`${s.label} top-1 %`, `${s.label} 1-NN %`]),
    `${metrics.series[0]!.label} mAP@10`,
  ];
  const lines = metrics.dims.map((dim) => {
    const cells = metrics.series.flatMap((s) => {
      const r = s.rows.find((x) => x.dim === dim);
      return [pct(r?.top1), pct(r?.nnTop1)];
    });
    return `| ${dim} | ${cells.join(' | ')} | ${metrics.series[0]!.rows.find((x) => x.dim === dim)?.map10?.toFixed(4) ?? ''} |`;
  });
  const chart = await stat(join(runDir, 'accuracy-vs-dim.svg')).then(
    () => `\n![accuracy vs dimension](${join(label, 'accuracy-vs-dim.svg')})\n`,
    () => '',
  );
  const text = [
    `## ${label}: ${metrics.data}, ${metrics.model}, ${metrics.series[0]!.label}`,
    '',
    settings.length > 0 ? `Settings: ${settings.join(', ')}` : 'Settings: (no config.json)',
    `Checkpoints: ${checkpoints.join(', ') || 'none'}; final model: ${hasModel ? join(label, 'model') : 'none'}`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...lines,
    chart,
  ].join('\n');
  const mrl = metrics.series[0]!.rows;
  const full = mrl.at(-1);
  const smallest = mrl[0];
  return {
    text,
    model: metrics.model,
    label,
    best: { fullDim: full?.dim, fullTop1: full?.top1, smallDim: smallest?.dim, smallTop1: smallest?.top1 },
  };
}

export const reportCommand: CommandDef = defineCommand({
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
      parts.push('| run | model | smallest dim | top-1 % | full dim | top-1 % |', '|---|---|---|---|---|---|');
      for (const s of sections)
        parts.push(
          `| ${s.label} | ${s.model} | ${s.best.smallDim ?? ''} | ${pct(s.best.smallTop1)} | ${s.best.fullDim ?? ''} | ${pct(s.best.fullTop1)} |`,
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

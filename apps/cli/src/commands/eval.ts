import { join, resolve } from 'node:path';
import { formatRunTable, MrlError, runTableCsv, runTableDims } from '@mrl/core';
import { renderChartSvg, writeChart } from '../chart.js';
import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, EVAL_FLAGS, FORMAT_FLAG, RUN_DIR_FLAG } from '../flags.js';
import { readRunMetrics } from '../metrics-file.js';
import { displayPath, requireRunDir } from '../run-folder.js';

export const evalCommand = defineMrlCommand({
  name: 'eval',
  description:
    'Print the per-dim table of a run (MRL and its baselines, the same table fit printed) as text, JSON ' +
    'or CSV, and draw the metric-vs-dimension chart (SVG + PNG).',
  examples: [
    'mrl-cli eval --run-dir runs/vision-mlp',
    'mrl-cli eval --run-dir runs/vision-mlp --format csv > dims.csv',
    'mrl-cli eval --run-dir runs/vision-mlp --metric nnTop1 --chart out/nn',
    'mrl-cli eval --run-dir runs/text-bert-tiny --format json --chart none',
  ],
  flags: { ...RUN_DIR_FLAG, ...FORMAT_FLAG, ...EVAL_FLAGS, ...COMMON_FLAGS },
  async run(options) {
    const runDir = resolve(requireRunDir(options['run-dir'], 'eval'));
    const { table } = await readRunMetrics(runDir);
    const metric = table.metrics.find((m) => m.key === (options.metric ?? table.metrics[0]!.key));
    if (metric === undefined) {
      throw new MrlError(
        'invalid-argument',
        `--metric '${options.metric}' is not in this run's table.`,
        `This run has: ${table.metrics.map((m) => m.key).join(', ')}.`,
      );
    }

    let chart: { svg: string; png: string } | undefined;
    if (options.chart !== 'none') {
      const base = options.chart === undefined ? join(runDir, 'accuracy-vs-dim') : resolve(options.chart);
      const svg = renderChartSvg(
        table.series
          .map((s) => ({
            label: s.label,
            points: s.rows
              .filter((r) => typeof r.values[metric.key] === 'number')
              .map((r) => ({ dim: r.dim, value: r.values[metric.key]! })),
          }))
          .filter((s) => s.points.length > 0),
        {
          title: `${table.data}, ${table.model}: ${metric.header.replace(' %', '')} vs dimension`,
          // The chart's axis shows values x100: percent for fractions, x100 for scores.
          yLabel: metric.kind === 'percent' ? metric.header : `${metric.header} (x100)`,
        },
      );
      chart = await writeChart(base, svg);
    }

    if (options.format === 'json') {
      const rows = runTableDims(table).map((dim) =>
        Object.fromEntries([
          ['dim', dim],
          ...table.series.map((s) => [s.key, s.rows.find((r) => r.dim === dim)?.values ?? null]),
        ]),
      );
      process.stdout.write(
        `${JSON.stringify({ runDir, table, rows, ...(chart === undefined ? {} : { chart }) }, null, 2)}\n`,
      );
    } else if (options.format === 'csv') {
      process.stdout.write(`${runTableCsv(table)}\n`);
    } else {
      process.stdout.write(`${formatRunTable(table)}\n`);
    }
    if (chart !== undefined) process.stderr.write(`chart: ${displayPath(chart.svg)}, ${displayPath(chart.png)}\n`);
  },
});

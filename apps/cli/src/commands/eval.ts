import { join, resolve } from 'node:path';
import { formatTable, percent } from '@mrl/core';
import { renderChartSvg, writeChart } from '../chart.js';
import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, EVAL_FLAGS, FORMAT_FLAG, RUN_DIR_FLAG } from '../flags.js';
import { readRunMetrics, type DimMetrics } from '../metrics-file.js';
import { requireRunDir } from '../run-folder.js';
import { displayPath } from '../run-folder.js';

const METRIC_NAMES = { top1: 'top-1 accuracy (linear head)', nnTop1: '1-NN top-1 accuracy', map10: 'mAP@10' } as const;

export const evalCommand = defineMrlCommand({
  name: 'eval',
  description:
    'Print the per-dim table of a run (MRL and its baselines) as text, JSON or CSV, and draw the accuracy-vs-dimension chart (SVG + PNG).',
  examples: [
    'mrl-cli eval --run-dir runs/vision-mlp',
    'mrl-cli eval --run-dir runs/vision-mlp --format csv > dims.csv',
    'mrl-cli eval --run-dir runs/vision-mlp --metric nnTop1 --chart out/nn',
    'mrl-cli eval --run-dir runs/vision-mlp --format json --chart none',
  ],
  flags: { ...RUN_DIR_FLAG, ...FORMAT_FLAG, ...EVAL_FLAGS, ...COMMON_FLAGS },
  async run(options) {
    const runDir = resolve(requireRunDir(options['run-dir'], 'eval'));
    const metrics = await readRunMetrics(runDir);
    const baselines = metrics.series.slice(1);
    const at = (rows: DimMetrics[], dim: number): DimMetrics | undefined => rows.find((r) => r.dim === dim);
    const mrl = metrics.series[0]!;

    let chart: { svg: string; png: string } | undefined;
    if (options.chart !== 'none') {
      const base = options.chart === undefined ? join(runDir, 'accuracy-vs-dim') : resolve(options.chart);
      const metric = options.metric;
      const svg = renderChartSvg(
        metrics.series
          .map((s) => ({
            label: s.label,
            points: s.rows.filter((r) => typeof r[metric] === 'number').map((r) => ({ dim: r.dim, value: r[metric]! })),
          }))
          .filter((s) => s.points.length > 0),
        {
          title: `${metrics.data}, ${metrics.model}: ${METRIC_NAMES[metric]} vs dimension`,
          yLabel: metric === 'map10' ? 'mAP@10 (x100)' : `${METRIC_NAMES[metric]} (%)`,
        },
      );
      chart = await writeChart(base, svg);
    }

    if (options.format === 'json') {
      const rows = metrics.dims.map((dim) =>
        Object.fromEntries([['dim', dim], ...metrics.series.map((s) => [s.key, at(s.rows, dim) ?? null])]),
      );
      process.stdout.write(
        `${JSON.stringify({ runDir, model: metrics.model, data: metrics.data, head: metrics.head, rows, ...(chart === undefined ? {} : { chart }) }, null, 2)}\n`,
      );
      return;
    }
    if (options.format === 'csv') {
      const fields = ['top1', 'nnTop1', 'map10'] as const;
      const header = ['dim', ...metrics.series.flatMap((s) => fields.map((f) => `${s.key}_${f}`))];
      const lines = metrics.dims.map((dim) =>
        [dim, ...metrics.series.flatMap((s) => fields.map((f) => at(s.rows, dim)?.[f] ?? ''))].join(','),
      );
      process.stdout.write(`${header.join(',')}\n${lines.join('\n')}\n`);
    } else {
      const table = formatTable(metrics.dims, [
        { header: 'dim', value: (d) => String(d) },
        { header: `${mrl.label} top-1 %`, value: (d) => percent(at(mrl.rows, d)?.top1) },
        { header: `${mrl.label} 1-NN %`, value: (d) => percent(at(mrl.rows, d)?.nnTop1) },
        { header: `${mrl.label} mAP@10`, value: (d) => at(mrl.rows, d)?.map10?.toFixed(4) },
        ...baselines.flatMap((s) => [
          { header: `${s.label} top-1 %`, value: (d: number) => percent(at(s.rows, d)?.top1) },
          { header: `${s.label} 1-NN %`, value: (d: number) => percent(at(s.rows, d)?.nnTop1) },
        ]),
      ]);
      process.stdout.write(
        `${metrics.data}, ${metrics.model}, ${mrl.label}${baselines.length > 0 ? ` vs ${baselines.map((s) => s.label).join(', ')}` : ''}\n${table}\n`,
      );
    }
    if (chart !== undefined) process.stderr.write(`chart: ${displayPath(chart.svg)}, ${displayPath(chart.png)}\n`);
  },
});

import {
  dimSeries,
  embedArrays,
  formatTable,
  majorityClass,
  percent,
  type ArrayDataset,
  type ClassifierRun,
  type DimRow,
  type EmbeddingMatrix,
  type RunTable,
} from '@mrl/core';
import { corruptImages, DEFAULT_CORRUPTIONS } from '../eval/corruptions.js';
import { scoreEmbeddings, type VisionTask } from './classify.js';

/** Per-dim rows of every model of a vision run. */
export interface VisionRows {
  mrl: DimRow[];
  ff: Map<number, DimRow>;
  svd: Map<number, DimRow>;
  rand: Map<number, DimRow>;
  /** Random features: the encoder at its initialisation, untrained. */
  untrained: Map<number, DimRow>;
}

type Row = DimRow & {
  ff?: DimRow | undefined;
  svd?: DimRow | undefined;
  rand?: DimRow | undefined;
  untrained?: DimRow | undefined;
};

/** The plain-text table: MRL's top-1, 1-NN and mAP@10, then each baseline's top-1 and 1-NN. */
export function visionTextTable(rows: VisionRows): string {
  const joined: Row[] = rows.mrl.map((r) => ({
    ...r,
    ff: rows.ff.get(r.dim),
    svd: rows.svd.get(r.dim),
    rand: rows.rand.get(r.dim),
    untrained: rows.untrained.get(r.dim),
  }));
  const baselineColumns = (key: 'ff' | 'svd' | 'rand' | 'untrained', name: string) =>
    rows[key].size > 0
      ? [
          { header: `${name} top-1 %`, value: (r: Row) => percent(r[key]?.top1) },
          { header: `${name} 1-NN %`, value: (r: Row) => percent(r[key]?.nnTop1) },
        ]
      : [];
  const gap = {
    header: 'MRL-FF',
    value: (r: Row) => (r.ff?.top1 === undefined ? undefined : (100 * (r.top1! - r.ff.top1)).toFixed(2)),
  };
  return formatTable(joined, [
    { header: 'dim', value: (r) => String(r.dim) },
    { header: 'MRL top-1 %', value: (r) => percent(r.top1) },
    { header: 'MRL 1-NN %', value: (r) => percent(r.nnTop1) },
    { header: 'MRL mAP@10', value: (r) => r.map10 },
    ...baselineColumns('ff', 'FF'),
    ...(rows.ff.size > 0 ? [gap] : []),
    ...baselineColumns('svd', 'SVD'),
    ...baselineColumns('rand', 'Rand'),
    ...baselineColumns('untrained', 'Untrained'),
  ]);
}

/** The MRL model on corrupted copies of the test images (a fixed seed per corruption). */
export async function robustnessRows(
  task: VisionTask,
  mrlRun: ClassifierRun,
  mrlTrainEmb: EmbeddingMatrix,
): Promise<{ corruption: string; rows: DimRow[] }[]> {
  const { options, context, data } = task;
  const corruptions =
    options.robustness === true
      ? DEFAULT_CORRUPTIONS
      : options.robustness === false || options.robustness === undefined
        ? []
        : options.robustness;
  const out: { corruption: string; rows: DimRow[] }[] = [];
  for (const corruption of corruptions) {
    const test = data.test;
    const shape = [test.count, ...test.exampleShape] as [number, number, number, number];
    const corrupted: ArrayDataset = { ...test, inputs: corruptImages(test.inputs, shape, corruption, context.seed) };
    const corruptedEmb = await embedArrays(mrlRun.encoder, corrupted);
    out.push({
      corruption: `${corruption.name}:${corruption.severity}`,
      rows: await scoreEmbeddings(task, mrlRun, mrlTrainEmb, corruptedEmb, data.dims, corrupted),
    });
  }
  return out;
}

/** The robustness table (top-1 % / 1-NN % per corruption), or '' without corruptions. */
export function robustnessTable(
  dims: readonly number[],
  mrlRows: readonly DimRow[],
  robustness: readonly { corruption: string; rows: DimRow[] }[],
): string {
  if (robustness.length === 0) return '';
  const cell = (r: DimRow) => `${percent(r.top1)} / ${percent(r.nnTop1)}`;
  return `\n\nMRL on corrupted test images (top-1 % / 1-NN %):\n${formatTable(
    dims.map((dim, j) => ({ dim, j })),
    [
      { header: 'dim', value: (r) => String(r.dim) },
      { header: 'clean', value: (r) => cell(mrlRows[r.j]!) },
      ...robustness.map((c) => ({ header: c.corruption, value: (r: { j: number }) => cell(c.rows[r.j]!) })),
    ],
  )}`;
}

/** The run table as data (what metrics.json keeps and fit, eval and report print). */
export function visionRunTable(task: VisionTask, rows: VisionRows, notes: string): RunTable {
  const { options, data } = task;
  const values = (r: DimRow) => ({ top1: r.top1, nnTop1: r.nnTop1, map10: r.map10 });
  const optionalSeries = (key: 'ff' | 'svd' | 'rand' | 'untrained', label: string) =>
    rows[key].size > 0 ? [dimSeries(key, label, rows[key].values(), values)] : [];
  return {
    data: data.name,
    model: options.model,
    task: `test set, ${data.test.count} images (1-NN and mAP@10 search ${data.train.count} training images)`,
    embeddingDim: options.embeddingDim,
    metrics: [
      { key: 'top1', header: 'top-1 %', kind: 'percent' },
      { key: 'nnTop1', header: '1-NN %', kind: 'percent' },
      { key: 'map10', header: 'mAP@10', kind: 'score' },
    ],
    series: [
      dimSeries('mrl', options.head === 'shared' ? 'MRL-E' : 'MRL', rows.mrl, values),
      ...optionalSeries('ff', 'FF'),
      ...optionalSeries('svd', 'SVD'),
      ...optionalSeries('rand', 'Rand'),
      ...optionalSeries('untrained', 'Untrained'),
    ],
    references: [
      { label: 'majority class', values: { top1: majorityClass(data.train.labels, data.test.labels).accuracy } },
    ],
    ...(notes === '' ? {} : { notes: [notes.trim()] }),
  };
}

import { dimSeries, formatTable, percent, type RunTable } from '@mrl/core';
import type { RecallRow } from '../evaluate.js';
import type { AlignTask } from './align.js';
import type { AlignEvaluation } from './evaluate.js';

type Scores = Pick<AlignEvaluation, 'recall' | 'zeroShot'>;

/** Per-dim scores of every model of an align run; each baseline is absent when not compared. */
export interface AlignRows {
  mrl: Scores;
  /** FF: a model per dim, scored at its own dim. */
  ff: Map<number, { recall: RecallRow; zeroShot?: number }>;
  /** SVD: PCA of the model without MRL. */
  svd?: Scores;
  /** Truncation of the model without MRL. */
  trunc?: Scores;
  /** Random features: the dual encoder at its initialisation, untrained. */
  untrained?: Scores;
}

const r = (row: RecallRow | undefined, side: 'imageToText' | 'textToImage', k: number) => percent(row?.[side][k]);

/** The plain-text table: MRL's recall@1/5/10 both ways and zero-shot, then each baseline's R@10 and zero-shot. */
export function alignTextTable(task: AlignTask, rows: AlignRows): string {
  const { dims } = task;
  const d = task.base.embeddingDim;
  const zs = rows.mrl.zeroShot.length > 0;
  const j = (dim: number) => dims.indexOf(dim);
  const baseline = (
    name: string,
    pick: (dim: number) => { recall?: RecallRow | undefined; zeroShot?: number | undefined } | undefined,
  ) => [
    { header: `${name} I->T R@10`, value: (dim: number) => r(pick(dim)?.recall, 'imageToText', 10) },
    { header: 'T->I R@10', value: (dim: number) => r(pick(dim)?.recall, 'textToImage', 10) },
    ...(zs ? [{ header: 'zero-shot %', value: (dim: number) => percent(pick(dim)?.zeroShot) }] : []),
  ];
  const ofScores = (s: Scores) => (dim: number) => ({ recall: s.recall[j(dim)]!, zeroShot: s.zeroShot[j(dim)] });
  const mrl = (dim: number) => rows.mrl.recall[j(dim)];
  return formatTable(dims, [
    { header: 'dim', value: (dim) => String(dim) },
    { header: 'I->T R@1', value: (dim) => r(mrl(dim), 'imageToText', 1) },
    { header: 'R@5', value: (dim) => r(mrl(dim), 'imageToText', 5) },
    { header: 'R@10', value: (dim) => r(mrl(dim), 'imageToText', 10) },
    { header: 'T->I R@1', value: (dim) => r(mrl(dim), 'textToImage', 1) },
    { header: 'R@5', value: (dim) => r(mrl(dim), 'textToImage', 5) },
    { header: 'R@10', value: (dim) => r(mrl(dim), 'textToImage', 10) },
    ...(zs ? [{ header: 'zero-shot %', value: (dim: number) => percent(rows.mrl.zeroShot[j(dim)]) }] : []),
    ...(rows.ff.size > 0 ? baseline('FF', (dim) => rows.ff.get(dim)) : []),
    ...(rows.svd === undefined ? [] : baseline('SVD', ofScores(rows.svd))),
    ...(rows.trunc === undefined ? [] : baseline(`full-${d}`, ofScores(rows.trunc))),
    ...(rows.untrained === undefined ? [] : baseline('Untrained', ofScores(rows.untrained))),
  ]);
}

/** Share of the labelled test images in the largest folder (zero-shot's majority reference), and the folder count. */
export function zeroShotMajority(task: AlignTask): { majority?: number; classes: number } {
  const counts = new Map<string, number>();
  for (const p of task.data.test) if (p.label !== undefined) counts.set(p.label, (counts.get(p.label) ?? 0) + 1);
  if (counts.size === 0) return { classes: 0 };
  const labelled = task.data.test.filter((p) => p.label !== undefined).length;
  return { majority: Math.max(...counts.values()) / labelled, classes: counts.size };
}

/** Candidates each test query ranks its pair among: the test pairs, or with `gallery: 'all'` every pair. */
export function galleryCount(task: AlignTask): number {
  const n = task.data.test.length;
  return task.options.gallery === 'all' ? n + task.data.train.length : n;
}

/** What the recall is over, for titles and the run table. */
export function retrievalScope(task: AlignTask): string {
  const n = task.data.test.length;
  return task.options.gallery === 'all'
    ? `${n} test pairs as queries over the whole collection (${galleryCount(task)} pairs)`
    : `test split, ${n} pairs`;
}

/** Lines under the text table: what each column is, and chance. */
export function alignFooter(task: AlignTask, rows: AlignRows): string {
  const n = galleryCount(task);
  const d = task.base.embeddingDim;
  const { majority, classes } = zeroShotMajority(task);
  return [
    `MRL (left)${rows.ff.size > 0 ? ', FF (a model per dim)' : ''}${rows.svd === undefined ? '' : `, SVD (PCA of the full-${d} model)`}${rows.trunc === undefined ? '' : `, the same model trained with the full-${d} loss only and truncated`}${rows.untrained === undefined ? '' : ', the untrained dual encoder (random features)'}; recall in %, ties count against the query.`,
    `Chance: R@1 ${percent(1 / n)}, R@5 ${percent(Math.min(1, 5 / n))}, R@10 ${percent(Math.min(1, 10 / n))} (${task.options.gallery === 'all' ? `${task.data.test.length} test queries, ${n} candidates` : `N_test = ${n}`}).`,
    ...(majority === undefined
      ? []
      : [
          `Zero-shot over ${classes} folders: uniform chance ${percent(1 / classes)}, majority class ${percent(majority)}.`,
        ]),
  ].join('\n');
}

function recallValues(row: RecallRow | undefined, zeroShot: number | undefined) {
  return {
    i2t1: row?.imageToText[1],
    i2t5: row?.imageToText[5],
    i2t10: row?.imageToText[10],
    t2i1: row?.textToImage[1],
    t2i5: row?.textToImage[5],
    t2i10: row?.textToImage[10],
    i2tMap10: row?.map10.imageToText,
    t2iMap10: row?.map10.textToImage,
    ...(zeroShot === undefined ? {} : { zeroShot }),
  };
}

/** The run table as data: MRL, FF, SVD and truncation series with recall@1/10 both ways and zero-shot. */
export function alignRunTable(task: AlignTask, rows: AlignRows, modelName: string): RunTable {
  const { dims, base } = task;
  const d = base.embeddingDim;
  const n = galleryCount(task);
  const { majority } = zeroShotMajority(task);
  const series = (key: string, label: string, s: Scores) =>
    dimSeries(
      key,
      label,
      dims.map((dim, j) => ({ dim, j })),
      (x) => recallValues(s.recall[x.j], s.zeroShot[x.j]),
    );
  return {
    data: task.data.dataName,
    model: `${modelName} (${base.vision} + ${base.text})`,
    task: `image <-> text retrieval, ${retrievalScope(task)}`,
    embeddingDim: d,
    metrics: [
      { key: 'i2t1', header: 'I->T R@1 %', kind: 'percent' },
      { key: 'i2t10', header: 'I->T R@10 %', kind: 'percent' },
      { key: 't2i1', header: 'T->I R@1 %', kind: 'percent' },
      { key: 't2i10', header: 'T->I R@10 %', kind: 'percent' },
      { key: 'i2tMap10', header: 'I->T mAP@10', kind: 'score' },
      { key: 't2iMap10', header: 'T->I mAP@10', kind: 'score' },
      ...(rows.mrl.zeroShot.length > 0 ? [{ key: 'zeroShot', header: 'zero-shot %', kind: 'percent' as const }] : []),
    ],
    series: [
      series('mrl', 'MRL', rows.mrl),
      ...(rows.ff.size > 0
        ? [
            dimSeries(
              'ff',
              'FF',
              [...rows.ff].map(([dim, v]) => ({ dim, ...v })),
              (x) => recallValues(x.recall, x.zeroShot),
            ),
          ]
        : []),
      ...(rows.svd === undefined ? [] : [series('svd', 'SVD', rows.svd)]),
      ...(rows.trunc === undefined ? [] : [series('trunc', `Trunc-${d}`, rows.trunc)]),
      ...(rows.untrained === undefined ? [] : [series('untrained', 'Untrained', rows.untrained)]),
    ],
    references: [
      {
        label: 'chance',
        values: {
          i2t1: 1 / n,
          i2t10: Math.min(1, 10 / n),
          t2i1: 1 / n,
          t2i10: Math.min(1, 10 / n),
          ...(majority === undefined ? {} : { zeroShot: majority }),
        },
      },
    ],
    notes: [
      [
        ...(rows.ff.size > 0 ? ['FF: a dual encoder per dim (shared space m wide)'] : []),
        ...(rows.svd === undefined
          ? []
          : [
              `SVD: the full-${d} model's embeddings projected on the top-m principal directions of its training images and captions`,
            ]),
        ...(rows.trunc === undefined
          ? []
          : [`Trunc-${d}: the same model trained with the full-${d} loss only, its embedding truncated`]),
        ...(rows.untrained === undefined
          ? []
          : ['Untrained: the dual encoder at its random initialisation (the MRL model seed), not trained']),
        'zero-shot chance is the majority folder.',
      ].join('; '),
    ],
  };
}

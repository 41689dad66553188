import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { MrlError, type ArrayDataset, type BatchSource, type ClassTarget, type SupervisedBatch } from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import { loadFashionMnist } from '../fashion-mnist.js';
import type { ImageTransform } from './decode.js';
import {
  IMAGE_EXTENSIONS,
  ImageFolderBatches,
  loadImageFolderArrays,
  openImageFolder,
  type ImageFolder,
} from './image-folder.js';

/**
 * Where a vision run's images come from, picked by `--data <name|path>`:
 * - `fashion-mnist`: the IDX files of the Debian package (28x28 grey, the demo);
 * - a folder of class sub-folders (torchvision's ImageFolder layout), with `train/` and `test/`
 *   (or `val/`) sub-folders when present, else split by a hash of each file's path;
 * - a `.csv` (header `path,label`) or `.jsonl` (`{"path": ..., "label": ...}`) manifest, paths
 *   relative to the manifest's folder, split the same way.
 */
export interface VisionDataOptions {
  /** `fashion-mnist`, a folder, or a manifest file. */
  data: string;
  /** Folder of the Fashion-MNIST files (default: the Debian package's). */
  dataDir?: string;
  /** Folders and manifests: images become `imageSize` x `imageSize` (default 32). */
  imageSize?: number;
  /** Folders and manifests: 1 (grey) or 3 (RGB, default); alpha is dropped, grey repeated. */
  channels?: 1 | 3;
  /** Without train/test sub-folders: the fraction of each class held out (default 0.2). */
  testFraction?: number;
  /** Corrupt images are an error (default: skipped, counted and named in a warning). */
  strict?: boolean;
  /**
   * Folders and manifests: training images decoded into memory for evaluation (the 1-NN database
   * and the SVD baseline), a seeded sample; training itself streams every image from disk, so
   * memory does not grow with the data set (default 10,000).
   */
  evalTrainLimit?: number;
  /** Training augmentation for folders and manifests: random-resized crop and flip (default true). */
  augment?: boolean;
  seed?: number;
  /** Warnings (skipped files, tiny classes); default: none. */
  warn?: (line: string) => void;
}

export interface VisionData {
  /** Name for tables: `fashion-mnist` or the folder / manifest's path as given. */
  name: string;
  /** Training images in memory: all of an IDX set; a seeded sample of a folder (`evalTrainLimit`). */
  train: ArrayDataset;
  /** Training images in all (what `trainBatches` covers for folders). */
  trainCount: number;
  test: ArrayDataset;
  /** Training batches with augmentation, decoded as they are needed (folders and manifests). */
  trainBatches?: BatchSource<SupervisedBatch<tf.Tensor, ClassTarget>>;
  classNames: string[];
  /** How a new image becomes a model input (what embed uses); absent for IDX data. */
  transform?: ImageTransform;
  skipped: { path: string; reason: string }[];
}

/** Position of a file in [0, 1) from a hash of its path: the same split on every machine. */
export function hashFraction(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * The files for which `keep` holds, in a seeded order (a hash of each path): any prefix of the
 * list is a sample of every class, so --train-limit and the evaluation sample stay balanced.
 */
const take = (folder: ImageFolder, keep: (i: number) => boolean): ImageFolder => {
  const rows: { file: string; label: number; key: number }[] = [];
  folder.files.forEach((f, i) => {
    if (keep(i))
      rows.push({ file: f, label: folder.labels[i]!, key: hashFraction(`order:${relative(folder.root, f)}`) });
  });
  rows.sort((a, b) => a.key - b.key);
  return {
    ...folder,
    files: rows.map((r) => r.file),
    labels: Int32Array.from(rows, (r) => r.label),
    count: rows.length,
    skipped: [],
  };
};

/** Reads a CSV (`path,label` header) or JSONL manifest into an ImageFolder-like list. */
export async function readImageManifest(path: string): Promise<ImageFolder> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new MrlError('missing-file', `cannot read the image manifest ${path}: ${(cause as Error).message}.`, '', {
      cause,
    });
  }
  const base = dirname(path);
  const rows: { file: string; label: string; line: number }[] = [];
  const lines = text.split(/\r?\n/);
  if (extname(path).toLowerCase() === '.jsonl') {
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (cause) {
        throw new MrlError(
          'invalid-argument',
          `${path}:${i + 1}: not valid JSON (${(cause as Error).message}).`,
          'Write one JSON object per line: {"path": "cats/1.jpg", "label": "cat"}.',
        );
      }
      const row = value as { path?: unknown; label?: unknown };
      if (typeof row.path !== 'string' || (typeof row.label !== 'string' && typeof row.label !== 'number')) {
        throw new MrlError(
          'invalid-argument',
          `${path}:${i + 1}: needs a string field "path" and a string or number field "label".`,
          'Write one JSON object per line: {"path": "cats/1.jpg", "label": "cat"}.',
        );
      }
      rows.push({ file: row.path, label: String(row.label), line: i + 1 });
    });
  } else {
    const header = (lines[0] ?? '').split(',').map((h) => h.trim().toLowerCase());
    const pathAt = header.indexOf('path');
    const labelAt = header.indexOf('label');
    if (pathAt < 0 || labelAt < 0) {
      throw new MrlError(
        'invalid-argument',
        `${path}:1: the header must name the columns path and label, got '${lines[0] ?? ''}'.`,
        'Start the CSV with the line path,label.',
      );
    }
    lines.slice(1).forEach((line, i) => {
      if (line.trim() === '') return;
      const cells = line.split(',');
      const file = cells[pathAt]?.trim();
      const label = cells[labelAt]?.trim();
      if (file === undefined || file === '' || label === undefined || label === '') {
        throw new MrlError(
          'invalid-argument',
          `${path}:${i + 2}: a row needs a path and a label, got '${line}'.`,
          'Fill both columns (paths and labels may not contain commas).',
        );
      }
      rows.push({ file, label, line: i + 2 });
    });
  }
  if (rows.length === 0) throw new MrlError('invalid-argument', `the image manifest ${path} lists no images.`);
  const classNames = [...new Set(rows.map((r) => r.label))].sort();
  const files: string[] = [];
  for (const r of rows) {
    const file = isAbsolute(r.file) ? r.file : resolve(base, r.file);
    if (!existsSync(file)) {
      throw new MrlError(
        'missing-file',
        `${path}:${r.line}: the image ${r.file} does not exist (looked for ${file}).`,
        'Paths in a manifest are relative to its folder; fix the path or remove the row.',
      );
    }
    files.push(file);
  }
  return {
    root: base,
    classNames,
    files,
    labels: Int32Array.from(rows, (r) => classNames.indexOf(r.label)),
    count: rows.length,
    numClasses: classNames.length,
    skipped: [],
  };
}

/** Lays the test split's labels onto the training split's class names; a class only in test is an error. */
function alignClasses(train: ImageFolder, test: ImageFolder, where: string): ImageFolder {
  const extra = test.classNames.filter((c) => !train.classNames.includes(c));
  if (extra.length > 0) {
    throw new MrlError(
      'invalid-argument',
      `${where}: the test split has ${extra.length === 1 ? 'a class' : 'classes'} the training split lacks: ${extra.join(', ')}.`,
      'Every test class needs training images: add them to train/, or remove the class from test/.',
    );
  }
  const map = test.classNames.map((c) => train.classNames.indexOf(c));
  return {
    ...test,
    classNames: train.classNames,
    numClasses: train.numClasses,
    labels: test.labels.map((l) => map[l]!),
  };
}

/** Checks a training split: no empty class, warns for classes with fewer than 2 examples. */
function checkClasses(split: ImageFolder, where: string, warn: (line: string) => void): void {
  const counts = new Array<number>(split.numClasses).fill(0);
  for (const l of split.labels) counts[l]! += 1;
  const empty = split.classNames.filter((_, i) => counts[i] === 0);
  if (empty.length > 0) {
    throw new MrlError(
      'invalid-argument',
      `${where}: the training split has no images of class ${empty.join(', ')}.`,
      'Add images to that class, lower --test-fraction, or remove the empty class folder.',
    );
  }
  if (split.numClasses < 2) {
    throw new MrlError(
      'invalid-argument',
      `${where}: there is only one class (${split.classNames[0]}); classification needs at least two.`,
      'Put each class in its own sub-folder.',
    );
  }
  const tiny = split.classNames.filter((_, i) => counts[i]! < 2);
  if (tiny.length > 0) warn(`warning: ${where}: class ${tiny.join(', ')} has a single training image.`);
}

/** Loads a vision data set by name or path. */
export async function loadVisionData(options: VisionDataOptions): Promise<VisionData> {
  const warn = options.warn ?? (() => undefined);
  if (options.data === 'fashion-mnist') {
    const data = await loadFashionMnist(options.dataDir);
    const asArrays = (split: typeof data.train): ArrayDataset => ({
      inputs: split.images,
      exampleShape: [split.height, split.width, split.channels],
      labels: split.labels,
      count: split.count,
      numClasses: split.numClasses,
    });
    return {
      name: 'fashion-mnist',
      train: asArrays(data.train),
      trainCount: data.train.count,
      test: asArrays(data.test),
      classNames: [...data.train.classNames],
      skipped: [],
    };
  }
  const path = resolve(options.data);
  if (!existsSync(path)) {
    throw new MrlError(
      'unknown-name',
      `--data '${options.data}' is neither a known vision data set nor an existing folder or manifest.`,
      'Use --data fashion-mnist, a folder of class sub-folders (root/<class>/<image>), or a .csv/.jsonl ' +
        'manifest of path,label rows.',
    );
  }
  const size = options.imageSize ?? 32;
  const channels = options.channels ?? 3;
  const fraction = options.testFraction ?? 0.2;
  const skipCorrupt = options.strict !== true;
  const isDir = statSync(path).isDirectory();
  let train: ImageFolder;
  let test: ImageFolder;
  const skippedAll: ImageFolder['skipped'] = [];
  const sub = (names: string[]): string | undefined =>
    names.map((n) => join(path, n)).find((p) => existsSync(p) && statSync(p).isDirectory());
  const trainDir = isDir ? sub(['train']) : undefined;
  const testDir = isDir ? sub(['test', 'val', 'valid', 'validation']) : undefined;
  if (trainDir !== undefined && testDir !== undefined) {
    const trainFolder = await openImageFolder(trainDir, { skipCorrupt });
    const testFolder = alignClasses(trainFolder, await openImageFolder(testDir, { skipCorrupt }), options.data);
    skippedAll.push(...trainFolder.skipped, ...testFolder.skipped);
    train = take(trainFolder, () => true);
    test = take(testFolder, () => true);
  } else {
    const all = isDir ? await openImageFolder(path, { skipCorrupt }) : await readImageManifest(path);
    skippedAll.push(...all.skipped);
    const held = all.files.map((f) => hashFraction(relative(all.root, f)) < fraction);
    train = take(all, (i) => !held[i]);
    test = take(all, (i) => held[i]!);
    if (test.count === 0) {
      throw new MrlError(
        'invalid-argument',
        `${options.data}: the hash split held out no image of ${all.count} (--test-fraction ${fraction}).`,
        'Raise --test-fraction, add images, or give train/ and test/ sub-folders.',
      );
    }
  }
  checkClasses(train, options.data, warn);
  const skipped = skippedAll.map((s) => ({ ...s, reason: s.reason.replace(/\s+/g, ' ').trim() }));
  if (skipped.length > 0) {
    warn(
      `warning: skipped ${skipped.length} unreadable image${skipped.length === 1 ? '' : 's'} (--strict makes this an ` +
        `error): ${skipped
          .slice(0, 3)
          .map((s) => `${s.path} (${s.reason})`)
          .join('; ')}${skipped.length > 3 ? '; ...' : ''}`,
    );
  }
  const evalTransform: ImageTransform = { size, channels, crop: 'resize' };
  const trainTransform: ImageTransform =
    options.augment === false
      ? evalTransform
      : { size, channels, crop: 'random-resized', scale: [0.35, 1], flip: true };
  const sample = take(train, (i) => i < (options.evalTrainLimit ?? 10_000));
  return {
    name: options.data,
    train: await loadImageFolderArrays(sample, evalTransform, options.seed ?? 0),
    trainCount: train.count,
    test: await loadImageFolderArrays(test, evalTransform, options.seed ?? 0),
    trainBatches: new ImageFolderBatches(train, trainTransform, options.seed ?? 0),
    classNames: train.classNames,
    transform: evalTransform,
    skipped,
  };
}

export { IMAGE_EXTENSIONS };

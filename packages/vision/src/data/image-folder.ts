import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import {
  createRandom,
  MrlError,
  type ArrayDataset,
  type BatchSource,
  type ClassTarget,
  type SupervisedBatch,
} from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { decodeImage, type ImageTransform } from './decode.js';

/** File extensions read by default (libvips decodes them all). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.svg', '.gif', '.tif', '.tiff', '.avif'] as const;

export interface ImageFolderOptions {
  extensions?: readonly string[];
  /**
   * Decode every file once when opening and leave out those that fail (counted in `skipped`);
   * without it, a corrupt file throws when its batch is decoded.
   */
  skipCorrupt?: boolean;
}

/** A labelled image collection: one sub-folder per class (torchvision's `ImageFolder`). */
export interface ImageFolder {
  root: string;
  classNames: string[];
  files: string[];
  labels: Int32Array;
  count: number;
  numClasses: number;
  /** Files left out by `skipCorrupt`, with the reason. */
  skipped: { path: string; reason: string }[];
}

async function decodes(path: string): Promise<string | null> {
  try {
    await sharp(path, { failOn: 'truncated' }).resize(8, 8, { fit: 'fill' }).raw().toBuffer();
    return null;
  } catch (cause) {
    return (cause as Error).message;
  }
}

/**
 * Lists `root/<class>/<image>` files, classes sorted by name (label = index), files sorted within
 * each class.
 *
 * @example
 * ```ts
 * const folder = await openImageFolder('photos', { skipCorrupt: true });
 * console.log(folder.classNames, folder.count, `${folder.skipped.length} skipped`);
 * ```
 */
export async function openImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
  const extensions = new Set((options.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase()));
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `cannot read the image folder ${root}: ${(cause as Error).message}.`,
      'Pass a folder with one sub-folder of images per class.',
      { cause },
    );
  }
  const classNames = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (classNames.length === 0) {
    throw new MrlError(
      'invalid-argument',
      `the image folder ${root} has no class sub-folders.`,
      'Put the images of each class in their own sub-folder: root/<class>/<image>.',
    );
  }
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classNames.entries()) {
    const names = (await readdir(join(root, name))).filter((f) => extensions.has(extname(f).toLowerCase())).sort();
    for (const f of names) {
      const path = join(root, name, f);
      if ((await stat(path)).isFile()) {
        files.push(path);
        labels.push(label);
      }
    }
  }
  const skipped: ImageFolder['skipped'] = [];
  let keptFiles = files;
  let keptLabels = labels;
  if (options.skipCorrupt === true) {
    const reasons: (string | null)[] = [];
    // A few at a time: sharp decodes on libuv's thread pool.
    for (let i = 0; i < files.length; i += 8) reasons.push(...(await Promise.all(files.slice(i, i + 8).map(decodes))));
    keptFiles = [];
    keptLabels = [];
    reasons.forEach((reason, i) => {
      if (reason === null) {
        keptFiles.push(files[i]!);
        keptLabels.push(labels[i]!);
      } else skipped.push({ path: files[i]!, reason });
    });
  }
  if (keptFiles.length === 0) {
    throw new MrlError(
      'invalid-argument',
      `the image folder ${root} has no readable images with extensions ${[...extensions].join(' ')}${skipped.length > 0 ? ` (${skipped.length} skipped as corrupt)` : ''}.`,
    );
  }
  return {
    root,
    classNames,
    files: keptFiles,
    labels: Int32Array.from(keptLabels),
    count: keptFiles.length,
    numClasses: classNames.length,
    skipped,
  };
}

/** Decodes the images at `indices` (in parallel on sharp's threads) into one [n, size, size, C] array. */
export async function decodeImages(
  files: readonly string[],
  indices: ArrayLike<number>,
  transform: ImageTransform,
  seed = 0,
  stream = 0,
): Promise<Float32Array> {
  const size = transform.size * transform.size * transform.channels;
  const out = new Float32Array(indices.length * size);
  await Promise.all(
    Array.from({ length: indices.length }, async (_, i) => {
      const index = indices[i]!;
      const path = files[index];
      if (path === undefined)
        throw new MrlError('invalid-argument', `image index ${index} is outside the ${files.length} files.`);
      // One random stream per (batch call, example): augmentations do not depend on decode order.
      out.set(await decodeImage(path, transform, createRandom(seed, 11, stream, index)), i * size);
    }),
  );
  return out;
}

/**
 * Training batches decoded from an image folder. `batch()` is asynchronous: the trainer asks for
 * the next batch before computing the current step, so sharp decodes (on its own threads) while
 * TF.js computes.
 */
export class ImageFolderBatches implements BatchSource<SupervisedBatch<tf.Tensor, ClassTarget>> {
  readonly size: number;
  #calls = 0;

  constructor(
    readonly folder: ImageFolder,
    readonly transform: ImageTransform,
    readonly seed = 0,
  ) {
    this.size = folder.count;
  }

  async batch(indices: Int32Array): Promise<SupervisedBatch<tf.Tensor, ClassTarget>> {
    const { size, channels } = this.transform;
    const pixels = await decodeImages(this.folder.files, indices, this.transform, this.seed, this.#calls++);
    const input = tf.tensor4d(pixels, [indices.length, size, size, channels]);
    const labels = tf.tensor1d(
      Int32Array.from(indices, (i) => this.folder.labels[i]!),
      'int32',
    );
    return { input, target: { labels }, size: indices.length, dispose: () => tf.dispose([input, labels]) };
  }
}

/** Decodes a whole folder into memory (evaluation, small data sets) with a deterministic transform. */
export async function loadImageFolderArrays(
  folder: ImageFolder,
  transform: ImageTransform,
  seed = 0,
): Promise<ArrayDataset> {
  const indices = Int32Array.from({ length: folder.count }, (_, i) => i);
  const inputs = new Float32Array(folder.count * transform.size * transform.size * transform.channels);
  for (let start = 0; start < folder.count; start += 64) {
    const part = indices.subarray(start, Math.min(folder.count, start + 64));
    inputs.set(
      await decodeImages(folder.files, part, transform, seed),
      start * transform.size * transform.size * transform.channels,
    );
  }
  return {
    inputs,
    exampleShape: [transform.size, transform.size, transform.channels],
    labels: folder.labels,
    count: folder.count,
    numClasses: folder.numClasses,
  };
}

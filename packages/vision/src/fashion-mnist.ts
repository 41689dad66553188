import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MrlError } from '@mrl/core';
import { readIdx } from './idx.js';

/** Where Debian's `dataset-fashion-mnist` installs the files. */
export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** Grey images in [0, 1], row-major [N, H, W], with integer labels. */
export interface ImageSplit {
  images: Float32Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames: readonly string[];
}

export interface LabelledImages {
  train: ImageSplit;
  test: ImageSplit;
}

async function readSplit(dir: string, prefix: 'train' | 't10k'): Promise<ImageSplit> {
  const find = (kind: string): string => {
    for (const name of [
      `${prefix}-${kind}-idx${kind === 'images' ? 3 : 1}-ubyte.gz`,
      `${prefix}-${kind}-idx${kind === 'images' ? 3 : 1}-ubyte`,
    ]) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
    }
    throw new MrlError(
      'missing-file',
      `no ${prefix} ${kind} file (${prefix}-${kind}-idx*-ubyte[.gz]) in ${dir}.`,
      `Install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass --data-dir with the IDX files.`,
    );
  };
  const images = await readIdx(find('images'));
  const labels = await readIdx(find('labels'));
  const [count, height, width] = images.shape as [number, number, number];
  if (images.shape.length !== 3 || labels.shape.length !== 1 || labels.shape[0] !== count) {
    throw new MrlError(
      'corrupt-file',
      `${dir}: images [${images.shape.join(', ')}] and labels [${labels.shape.join(', ')}] do not match.`,
    );
  }
  const pixels = new Float32Array(images.data.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i]! / 255;
  const labelArray = Int32Array.from(labels.data);
  for (let i = 0; i < labelArray.length; i++) {
    if (labelArray[i]! >= FASHION_MNIST_CLASSES.length) {
      throw new MrlError('corrupt-file', `${dir}: label ${labelArray[i]} at index ${i} is not one of the 10 classes.`);
    }
  }
  return {
    images: pixels,
    labels: labelArray,
    count,
    height,
    width,
    channels: 1,
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES,
  };
}

/** Fashion-MNIST (60,000 train / 10,000 test, 28x28 grey, 10 classes) from its IDX files. */
export async function loadFashionMnist(dir = FASHION_MNIST_DEFAULT_DIR): Promise<LabelledImages> {
  if (!existsSync(dir)) {
    throw new MrlError(
      'missing-file',
      `the Fashion-MNIST folder ${dir} does not exist.`,
      'Install it with apt-get install dataset-fashion-mnist, or pass --data-dir with the IDX files.',
    );
  }
  return { train: await readSplit(dir, 'train'), test: await readSplit(dir, 't10k') };
}

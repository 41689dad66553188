import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, MrlError } from '@mrl/core';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { centreCropBox, decodeImage, randomResizedCropBox } from '../src/data/decode.js';
import { ImageFolderBatches, loadImageFolderArrays, openImageFolder } from '../src/data/image-folder.js';
import { expectClose, skimagePhoto } from './helpers.js';

const SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="20" height="20" fill="#ff0000"/><rect x="20" width="20" height="20" fill="#0000ff"/></svg>';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'mrl-vision-'));
  await writeFile(join(dir, 'split.svg'), SVG);
  await sharp(skimagePhoto('chelsea.png')).webp().toFile(join(dir, 'chelsea.webp'));
  await writeFile(join(dir, 'not-an-image.png'), 'hello, I am text');
});

async function expectCorrupt(path: string): Promise<void> {
  const error = await decodeImage(path, { size: 8, channels: 3, crop: 'resize' }).catch((e: unknown) => e);
  expect(MrlError.is(error)).toBe(true);
  expect((error as MrlError).kind).toBe('corrupt-file');
  expect((error as MrlError).message).toContain(`cannot decode image ${path}`);
}

describe('decoding real images', () => {
  it('decodes PNG, JPEG, WebP and SVG to [size, size, C] in [0, 1]', async () => {
    for (const path of [
      skimagePhoto('astronaut.png'),
      skimagePhoto('rocket.jpg'),
      join(dir, 'chelsea.webp'),
      join(dir, 'split.svg'),
    ]) {
      const pixels = await decodeImage(path, { size: 16, channels: 3, crop: 'centre' });
      expect(pixels.length).toBe(16 * 16 * 3);
      expect(Math.min(...pixels)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...pixels)).toBeLessThanOrEqual(1);
      expect(Math.max(...pixels)).toBeGreaterThan(0.2);
    }
  });

  it('converts grey to RGB and RGB to grey', async () => {
    const rgb = await decodeImage(skimagePhoto('camera.png'), { size: 8, channels: 3, crop: 'resize' });
    for (let p = 0; p < 64; p++) expect(rgb[3 * p]).toBe(rgb[3 * p + 2]);
    const grey = await decodeImage(skimagePhoto('astronaut.png'), { size: 8, channels: 1, crop: 'resize' });
    expect(grey.length).toBe(64);
  });

  it('resizes the whole image, centre-crops the shorter side, and flips left-right', async () => {
    // The SVG is red on the left half and blue on the right half, 40x20.
    const whole = await decodeImage(join(dir, 'split.svg'), { size: 4, channels: 3, crop: 'resize' });
    expect(whole[0]).toBeGreaterThan(0.9); // red at the top-left
    expect(whole[3 * 3 + 2]).toBeGreaterThan(0.9); // blue at the top-right
    expect(centreCropBox(40, 20, 1)).toEqual({ left: 10, top: 0, width: 20, height: 20 });
    expect(centreCropBox(256, 256)).toEqual({ left: 16, top: 16, width: 224, height: 224 });
    // Find a seed whose first draw flips, and one that does not.
    const flips = (seed: number): boolean => createRandom(seed)() < 0.5;
    const flipSeed = [0, 1, 2, 3, 4, 5].find(flips)!;
    const flipped = await decodeImage(
      join(dir, 'split.svg'),
      { size: 4, channels: 3, crop: 'resize', flip: true },
      createRandom(flipSeed),
    );
    expect(flipped[2]).toBeGreaterThan(0.9); // blue now at the top-left
    expect(flipped[3 * 3]).toBeGreaterThan(0.9);
  });

  it('draws random-resized crops inside the image, reproducibly per seed', async () => {
    const random = createRandom(3);
    for (let i = 0; i < 200; i++) {
      const box = randomResizedCropBox(300, 200, random);
      expect(box.left + box.width).toBeLessThanOrEqual(300);
      expect(box.top + box.height).toBeLessThanOrEqual(200);
      expect(box.width * box.height).toBeGreaterThanOrEqual(0.08 * 300 * 200 * 0.9);
    }
    const t = { size: 12, channels: 3, crop: 'random-resized', flip: true } as const;
    const a = await decodeImage(skimagePhoto('coffee.png'), t, createRandom(5));
    const b = await decodeImage(skimagePhoto('coffee.png'), t, createRandom(5));
    const c = await decodeImage(skimagePhoto('coffee.png'), t, createRandom(6));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    await expect(decodeImage(skimagePhoto('coffee.png'), t)).rejects.toThrow(/need a seeded random stream/);
  });

  it('normalises per channel', async () => {
    const path = skimagePhoto('astronaut.png');
    const plain = await decodeImage(path, { size: 8, channels: 3, crop: 'centre' });
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const normed = await decodeImage(path, { size: 8, channels: 3, crop: 'centre', mean, std });
    expectClose(
      normed,
      Float32Array.from(plain, (v, i) => (v - mean[i % 3]!) / std[i % 3]!),
      1e-5,
    );
  });
});

describe('broken files', () => {
  it('names a truncated JPEG, a text file and a missing file', async () => {
    await expectCorrupt(skimagePhoto('truncated.jpg'));
    await expectCorrupt(join(dir, 'not-an-image.png'));
    await expectCorrupt(join(dir, 'missing.png'));
  });
});

describe('image folders', () => {
  let root: string;
  beforeAll(async () => {
    root = join(dir, 'folder');
    for (const cls of ['cat', 'space']) await mkdir(join(root, cls), { recursive: true });
    await copyFile(skimagePhoto('chelsea.png'), join(root, 'cat', 'a.png'));
    await copyFile(join(dir, 'chelsea.webp'), join(root, 'cat', 'b.webp'));
    await copyFile(skimagePhoto('truncated.jpg'), join(root, 'cat', 'broken.jpg'));
    await copyFile(skimagePhoto('astronaut.png'), join(root, 'space', 'a.png'));
    await copyFile(skimagePhoto('hubble_deep_field.jpg'), join(root, 'space', 'b.jpg'));
    await writeFile(join(root, 'space', 'notes.txt'), 'not an image');
  });

  it('lists one class per folder and skips corrupt files when asked, counting them', async () => {
    const all = await openImageFolder(root);
    expect(all.classNames).toEqual(['cat', 'space']);
    expect(all.count).toBe(5);
    expect(all.skipped).toEqual([]);
    const clean = await openImageFolder(root, { skipCorrupt: true });
    expect(clean.count).toBe(4);
    expect(clean.skipped.map((s) => s.path)).toEqual([join(root, 'cat', 'broken.jpg')]);
    expect([...clean.labels]).toEqual([0, 0, 1, 1]);
  });

  it('fails on a corrupt file in a batch without skipCorrupt, naming it', async () => {
    const all = await openImageFolder(root);
    const batches = new ImageFolderBatches(all, { size: 8, channels: 3, crop: 'resize' });
    await expect(batches.batch(Int32Array.from([0, 2]))).rejects.toThrow(
      `cannot decode image ${join(root, 'cat', 'broken.jpg')}`,
    );
  });

  it('decodes augmented batches asynchronously and whole folders into arrays', async () => {
    const folder = await openImageFolder(root, { skipCorrupt: true });
    const batches = new ImageFolderBatches(folder, { size: 16, channels: 3, crop: 'random-resized', flip: true }, 7);
    const pending = batches.batch(Int32Array.from([3, 0, 1]));
    expect(pending).toBeInstanceOf(Promise);
    const batch = await pending;
    expect(batch.input.shape).toEqual([3, 16, 16, 3]);
    expect([...batch.target.labels.dataSync()]).toEqual([1, 0, 0]);
    batch.dispose();
    const arrays = await loadImageFolderArrays(folder, { size: 8, channels: 1, crop: 'centre' });
    expect(arrays.count).toBe(4);
    expect(arrays.inputs.length).toBe(4 * 64);
    expect(arrays.exampleShape).toEqual([8, 8, 1]);
  });

  it('reports a folder without class folders', async () => {
    await expect(openImageFolder(join(root, 'cat'))).rejects.toThrow(/has no class sub-folders/);
    await expect(openImageFolder(join(root, 'nope'))).rejects.toThrow(/cannot read the image folder/);
  });
});

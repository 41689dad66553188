import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeImages, encodeTexts, loadAlignRun, readImages } from '@mrl/align';
import { initBackend } from '@mrl/core';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

// Captioned drawings written with sharp: coloured squares and bars, a caption beside each image.
let dir: string;
beforeAll(async () => {
  dir = await tempDir('align-embed');
  const colours: Record<string, [number, number, number]> = { red: [230, 20, 20], blue: [20, 20, 230] };
  for (const [colour, [r, g, b]] of Object.entries(colours)) {
    await mkdir(join(dir, 'pairs', colour), { recursive: true });
    for (let k = 0; k < 8; k++) {
      const shape = k % 2 === 0 ? 'square' : 'bar';
      const [w, h] = shape === 'square' ? [12, 12] : [14, 4 + k];
      await sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } })
        .png()
        .toFile(join(dir, 'pairs', colour, `${shape}${k}.png`));
      await writeFile(join(dir, 'pairs', colour, `${shape}${k}.txt`), `a ${colour} ${shape} number ${k}`);
    }
  }
  await mkdir(join(dir, 'new'), { recursive: true });
  await sharp({ create: { width: 10, height: 6, channels: 3, background: { r: 20, g: 200, b: 20 } } })
    .png()
    .toFile(join(dir, 'new', 'green.png'));
  await sharp({ create: { width: 6, height: 6, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } })
    .png()
    .toFile(join(dir, 'new', 'grey.png'));
  await writeFile(join(dir, 'captions.txt'), 'a red square\n\na blue bar number 3\n');
});

async function jsonl(path: string): Promise<{ id: string; embedding: number[] }[]> {
  return (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; embedding: number[] });
}

describe('mrl-cli embed on an align run', () => {
  it('embeds new images with the image tower and texts with the text tower', { timeout: 300_000 }, async () => {
    const run = join(dir, 'run');
    const fit = await cli([
      'fit',
      '--modality',
      'align',
      '--data',
      join(dir, 'pairs'),
      '--image-size',
      '8',
      '--steps',
      '3',
      '--batch-size',
      '8',
      '--dim',
      '16',
      '--dims',
      '8,16',
      '--test-fraction',
      '0.25',
      '--vocab-size',
      '60',
      '--cache-dir',
      join(dir, 'cache'),
      '--compare',
      'none',
      '--run-dir',
      run,
    ]);
    expectOk(fit);
    const embed = (input: string, out: string) =>
      cli(['embed', '--run-dir', run, '--input', input, '--dim', '8', '--formats', 'jsonl,npy', '--out', out]);
    const images = await embed(join(dir, 'new'), join(dir, 'images'));
    expectOk(images);
    expect(images.stdout).toContain('embedded 2 images from');
    const texts = await embed(join(dir, 'captions.txt'), join(dir, 'texts'));
    expectOk(texts);
    expect(texts.stdout).toContain('embedded 2 texts from');
    const imageRows = await jsonl(join(dir, 'images.jsonl'));
    const textRows = await jsonl(join(dir, 'texts.jsonl'));
    expect(imageRows.map((r) => r.id)).toEqual(['green.png', 'grey.png']);
    expect(textRows.map((r) => r.id)).toEqual(['1', '3']);
    for (const r of [...imageRows, ...textRows]) {
      expect(r.embedding).toHaveLength(8);
      expect(Math.hypot(...r.embedding)).toBeCloseTo(1, 4);
    }
    // The same numbers as the library's encode on the saved run.
    await initBackend('wasm');
    const model = await loadAlignRun(run);
    const lib = await encodeImages(
      model,
      await readImages([join(dir, 'new', 'green.png'), join(dir, 'new', 'grey.png')], model.imageSize),
      { dim: 8 },
    );
    imageRows.flatMap((r) => r.embedding).forEach((x, i) => expect(x).toBeCloseTo(lib.data[i]!, 5));
    const libTexts = await encodeTexts(model, ['a red square', 'a blue bar number 3'], { dim: 8 });
    textRows.flatMap((r) => r.embedding).forEach((x, i) => expect(x).toBeCloseTo(libTexts.data[i]!, 5));
    model.dispose();

    // A bad record is one error naming the file and line, before the model loads.
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"text": "a red bar", "id": "x"}\n{"caption": "no text field"}\n');
    expect(expectOneParagraphError(await cli(['embed', '--run-dir', run, '--input', bad]))).toContain(
      `${bad} line 2 has no field 'text'`,
    );
    const missing = await cli(['embed', '--run-dir', run]);
    expect(expectOneParagraphError(missing)).toContain('an align run embeds the images or texts you give it');
  });
});

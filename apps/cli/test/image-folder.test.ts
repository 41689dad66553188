import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

// Real photos and textures from Debian's python3-skimage: each class is crops of one picture,
// written in the formats and channel counts users have (grey, RGB, RGBA, palette PNG; JPEG).
const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const CLASSES = { brick: 'brick.png', grass: 'grass.png', astronaut: 'astronaut.png', coffee: 'coffee.png' };

async function writeCrops(root: string, perClass: number, seed: number): Promise<void> {
  let n = seed;
  const next = (): number => {
    n = (n * 1103515245 + 12345) % 2 ** 31;
    return n / 2 ** 31;
  };
  for (const [name, file] of Object.entries(CLASSES)) {
    const source = join(SKIMAGE, file);
    if (!existsSync(source)) throw new Error(`${source} is missing: apt-get install python3-skimage`);
    const meta = await sharp(source).metadata();
    await mkdir(join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const side = Math.floor(Math.min(meta.width!, meta.height!) * (0.3 + 0.3 * next()));
      const left = Math.floor((meta.width! - side) * next());
      const top = Math.floor((meta.height! - side) * next());
      const crop = sharp(source)
        .extract({ left, top, width: side, height: side })
        .resize(20 + (i % 3) * 12);
      const kind = i % 5;
      const out = join(root, name, `${i}.${kind === 4 ? 'jpg' : 'png'}`);
      if (kind === 0) await crop.greyscale().png().toFile(out);
      else if (kind === 1) await crop.ensureAlpha().png().toFile(out);
      else if (kind === 2) await crop.png({ palette: true }).toFile(out);
      else if (kind === 3) await crop.toColourspace('srgb').png().toFile(out);
      else await crop.jpeg().toFile(out);
    }
  }
}

let dir: string;
let photos: string;
beforeAll(async () => {
  dir = await tempDir('image-folder');
  photos = join(dir, 'photos');
  await writeCrops(photos, 20, 1);
  // One unreadable file: skipped and counted, not a failed run.
  await writeFile(join(photos, 'coffee', 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
});

describe('mrl-cli fit --data <image folder>', () => {
  it('trains on a folder of class sub-folders, with FF baselines, then embeds new images', {
    timeout: 300_000,
  }, async () => {
    const run = join(dir, 'run');
    const r = await cli([
      'fit',
      '--data',
      photos,
      '--image-size',
      '16',
      '--dim',
      '16',
      '--epochs',
      '12',
      '--batch-size',
      '16',
      '--test-fraction',
      '0.25',
      '--compare',
      'ff',
      '--run-dir',
      run,
    ]);
    expectOk(r);
    expect(r.stderr).toMatch(/warning: skipped 1 unreadable image .*broken\.jpg/);
    expect(r.stderr).toMatch(/data: .*photos, \d+ train \/ \d+ test images of 16x16x3, 4 classes/);
    // The table names the folder it ran on and beats chance (25%) clearly at every dim.
    const heading = r.stdout.split('\n').find((l) => l.includes(', mlp, d=16, MRL vs FF:'));
    expect(heading).toContain('photos');
    const rows = r.stdout
      .split('\n')
      .map((l) => /^\s*(8|16)\s+(\d+\.\d\d)\s/.exec(l))
      .filter((m) => m !== null);
    expect(rows.map((m) => Number(m![1]))).toEqual([8, 16]);
    for (const m of rows) expect(Number(m![2])).toBeGreaterThan(50);
    // The class names are kept for eval and embed.
    const labels = JSON.parse(await readFile(join(run, 'labels.json'), 'utf8'));
    expect(labels.classNames).toEqual(['astronaut', 'brick', 'coffee', 'grass']);
    expect(labels.transform).toMatchObject({ size: 16, channels: 3 });

    // New images, never seen in training: embedded with the run's decoding, prefix 8, renormalised.
    const fresh = join(dir, 'fresh');
    await writeCrops(fresh, 3, 99);
    const out = join(dir, 'fresh-emb');
    const e = await cli([
      'embed',
      '--run-dir',
      run,
      '--input',
      fresh,
      '--dim',
      '8',
      '--formats',
      'npy,jsonl',
      '--out',
      out,
    ]);
    expectOk(e);
    expect(e.stdout).toContain('embedded 12 images from');
    const lines = (await readFile(`${out}.jsonl`, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(12);
    expect(lines[0].id).toBe('astronaut/0.png');
    for (const l of lines) {
      expect(l.embedding).toHaveLength(8);
      const norm = Math.hypot(...(l.embedding as number[]));
      expect(norm).toBeCloseTo(1, 4);
    }
  });

  it('uses train/ and test/ sub-folders when present, and names a class found only in test', async () => {
    const split = join(dir, 'split');
    await writeCrops(join(split, 'train'), 4, 5);
    await writeCrops(join(split, 'test'), 2, 6);
    await mkdir(join(split, 'test', 'zebra'));
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toFile(join(split, 'test', 'zebra', '0.png'));
    const run = join(dir, 'run-split');
    const r = await cli(['fit', '--data', split, '--image-size', '8', '--dim', '8', '--epochs', '1', '--run-dir', run]);
    expect(expectOneParagraphError(r)).toContain('the test split has a class the training split lacks: zebra');
    // Nothing was written for a run that failed on its data.
    expect(existsSync(join(run, 'metrics.json'))).toBe(false);
  });

  it('a path that is neither a data set nor a folder is one error naming it', async () => {
    const r = await cli(['fit', '--data', join(dir, 'nowhere'), '--epochs', '1', '--run-dir', join(dir, 'r3')]);
    expect(expectOneParagraphError(r)).toContain(`--data '${join(dir, 'nowhere')}' is neither a known vision data set`);
  });
});

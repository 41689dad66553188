import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodePairs,
  dropFailed,
  pathHash,
  rasterise,
  readPairsJsonl,
  readSidecarFolder,
  splitPairs,
  svgCaption,
} from '../src/data.js';

let dir: string;

async function png(path: string, rgb: [number, number, number], width = 8, height = 8): Promise<void> {
  await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toFile(path);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrl-align-data-'));
  await mkdir(join(dir, 'pairs'));
  await png(join(dir, 'pairs', 'red.png'), [255, 0, 0]);
  await png(join(dir, 'pairs', 'blue.png'), [0, 0, 255], 16, 8);
  await writeFile(
    join(dir, 'pairs.jsonl'),
    `{"image": "pairs/red.png", "caption": "a red square", "label": "red"}\n\n{"image": "pairs/blue.png", "caption": "a blue box"}\n`,
  );
  await writeFile(
    join(dir, 'missing.jsonl'),
    `{"image": "pairs/red.png", "caption": "ok"}\n{"image": "pairs/green.png", "caption": "a green square"}\n`,
  );
  await writeFile(join(dir, 'bad.jsonl'), `{"image": "pairs/red.png"}\n`);
  await mkdir(join(dir, 'side', 'animals'), { recursive: true });
  await mkdir(join(dir, 'side', 'food'), { recursive: true });
  await png(join(dir, 'side', 'animals', 'cat.png'), [10, 10, 10]);
  await writeFile(join(dir, 'side', 'animals', 'cat.txt'), 'a black cat\n');
  await png(join(dir, 'side', 'food', 'apple.png'), [200, 0, 0]);
  await writeFile(join(dir, 'side', 'food', 'apple.txt'), 'a red apple');
  await png(join(dir, 'side', 'food', 'uncaptioned.png'), [0, 0, 0]);
  await mkdir(join(dir, 'orphan'));
  await writeFile(join(dir, 'orphan', 'dog.txt'), 'a dog');
  await writeFile(
    join(dir, 'drawing.svg'),
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" width="20" height="10">
<metadata><rdf:RDF><cc:Work rdf:about=""><dc:title>Fish &amp; chips</dc:title><dc:subject><rdf:Bag><rdf:li>food</rdf:li><rdf:li>Fish</rdf:li><rdf:li>unsorted</rdf:li></rdf:Bag></dc:subject>
<dc:creator><cc:Agent><dc:title>Someone</dc:title></cc:Agent></dc:creator></cc:Work></rdf:RDF></metadata>
<rect x="0" y="0" width="10" height="10" fill="#000000"/></svg>`,
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readPairsJsonl', () => {
  it('reads pairs with image paths relative to the file', async () => {
    const pairs = await readPairsJsonl(join(dir, 'pairs.jsonl'));
    expect(pairs).toEqual([
      { image: join(dir, 'pairs', 'red.png'), caption: 'a red square', label: 'red', key: join('pairs', 'red.png') },
      { image: join(dir, 'pairs', 'blue.png'), caption: 'a blue box', key: join('pairs', 'blue.png') },
    ]);
  });

  it('names a missing image and the line that references it', async () => {
    await expect(readPairsJsonl(join(dir, 'missing.jsonl'))).rejects.toThrow(
      `image ${join(dir, 'pairs', 'green.png')} (referenced at ${join(dir, 'missing.jsonl')}:2) does not exist.`,
    );
  });

  it('names a line without a caption', async () => {
    await expect(readPairsJsonl(join(dir, 'bad.jsonl'))).rejects.toThrow(
      `${join(dir, 'bad.jsonl')}:1 needs string fields "image" and "caption".`,
    );
  });

  it('names a missing pairs file', async () => {
    await expect(readPairsJsonl(join(dir, 'nope.jsonl'))).rejects.toThrow(
      `no pairs file at ${join(dir, 'nope.jsonl')}.`,
    );
  });
});

describe('readSidecarFolder', () => {
  it('pairs each caption with its image, labels by top folder, skips uncaptioned images', async () => {
    const pairs = await readSidecarFolder(join(dir, 'side'));
    expect(pairs.map((p) => [p.key, p.caption, p.label])).toEqual([
      [join('animals', 'cat.png'), 'a black cat', 'animals'],
      [join('food', 'apple.png'), 'a red apple', 'food'],
    ]);
  });

  it('names the missing image of a caption', async () => {
    await expect(readSidecarFolder(join(dir, 'orphan'))).rejects.toThrow(
      `caption ${join(dir, 'orphan', 'dog.txt')} has no image: expected ${join(dir, 'orphan', 'dog')}.png`,
    );
  });
});

describe('images', () => {
  it('rasterises to RGB letterboxed on white', async () => {
    const blue = await rasterise(join(dir, 'pairs', 'blue.png'), 4); // 16x8 -> 4x2 band in the middle rows
    expect(blue.length).toBe(4 * 4 * 3);
    expect(Array.from(blue.subarray(0, 3))).toEqual([255, 255, 255]);
    expect(Array.from(blue.subarray(4 * 3 + 0, 4 * 3 + 3))).toEqual([0, 0, 255]);
    // 20x10 SVG -> a 4x2 band in rows 1-2: black left half, transparent (-> white) right half.
    const svg = await rasterise(join(dir, 'drawing.svg'), 4);
    expect(Array.from(svg.subarray(0, 3))).toEqual([255, 255, 255]);
    expect(svg[(4 + 0) * 3]).toBeLessThan(30);
    expect(svg[(4 + 3) * 3]).toBe(255);
  });

  it('names a missing image', async () => {
    await expect(rasterise(join(dir, 'pairs', 'none.png'), 4)).rejects.toThrow(
      `image ${join(dir, 'pairs', 'none.png')} does not exist.`,
    );
  });

  it('caches decoded pixels and lists undecodable images', async () => {
    await writeFile(join(dir, 'broken.png'), 'not an image');
    const pairs = [
      { image: join(dir, 'pairs', 'red.png'), caption: 'r', key: 'red' },
      { image: join(dir, 'broken.png'), caption: 'x', key: 'broken' },
    ];
    const cacheFile = join(dir, 'cache', 'pixels.bin');
    const skipped: string[] = [];
    const first = await decodePairs(pairs, 2, { cacheFile, onSkip: (p) => skipped.push(p) });
    expect(skipped).toEqual([join(dir, 'broken.png')]);
    expect(first.failed).toEqual([1]);
    expect(Array.from(first.pixels.subarray(0, 3))).toEqual([255, 0, 0]);
    const second = await decodePairs(pairs, 2, { cacheFile, onSkip: () => expect.fail('the cache should be used') });
    expect(Array.from(second.pixels)).toEqual(Array.from(first.pixels));
    expect(second.failed).toEqual([1]);
    const kept = dropFailed(pairs, second);
    expect(kept.pairs.map((p) => p.key)).toEqual(['red']);
    expect(kept.pixels.count).toBe(1);
    await expect(decodePairs(pairs, 2, { strict: true })).rejects.toThrow(
      `image ${join(dir, 'broken.png')} could not be decoded`,
    );
  });

  it('decodes again when an image changes in place or the cache file is damaged', async () => {
    const image = join(dir, 'changing.png');
    const png = (r: number, g: number, b: number): Promise<Buffer> =>
      sharp({ create: { width: 2, height: 2, channels: 3, background: { r, g, b } } })
        .png()
        .toBuffer();
    await writeFile(image, await png(255, 0, 0));
    const pairs = [{ image, caption: 'c', key: 'changing' }];
    const cacheFile = join(dir, 'cache', 'changing.bin');
    expect(Array.from((await decodePairs(pairs, 2, { cacheFile })).pixels.subarray(0, 3))).toEqual([255, 0, 0]);
    // Same path and key, new content (and so a new modification time).
    await writeFile(image, await png(0, 0, 255));
    expect(Array.from((await decodePairs(pairs, 2, { cacheFile })).pixels.subarray(0, 3))).toEqual([0, 0, 255]);
    // A flipped byte in the cached pixels: the payload checksum no longer matches, so it is rebuilt.
    const cached = await readFile(cacheFile);
    cached[cached.length - 1]! ^= 0xff;
    await writeFile(cacheFile, cached);
    const again = await decodePairs(pairs, 2, { cacheFile });
    expect(Array.from(again.pixels)).toEqual([0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 255]);
  });
});

describe('openclipart metadata', () => {
  it('reads the drawing title and keywords, not the agents, dropping generic keywords', async () => {
    const { readFile } = await import('node:fs/promises');
    expect(svgCaption(await readFile(join(dir, 'drawing.svg'), 'utf8'))).toEqual({
      title: 'Fish & chips',
      keywords: ['food', 'fish'],
    });
  });
});

describe('splitPairs', () => {
  it('is fixed by each path: adding files never moves the others', () => {
    const pairs = Array.from({ length: 2000 }, (_, i) => ({ key: `folder/file_${i}.svg` }));
    const { train, test } = splitPairs(pairs, 0.1);
    expect(train.length + test.length).toBe(2000);
    expect(test.length).toBeGreaterThan(150);
    expect(test.length).toBeLessThan(250);
    const again = splitPairs([...pairs.slice(0, 500).reverse(), { key: 'new.svg' }], 0.1);
    const inTest = new Set(test.map((p) => p.key));
    for (const p of again.test) if (p.key !== 'new.svg') expect(inTest.has(p.key)).toBe(true);
    expect(pathHash('animals/cat.svg')).toBe(pathHash('animals/cat.svg'));
    expect(() => splitPairs(pairs, 1)).toThrow('testFraction must be in (0, 1), got 1.');
  });
});

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { MrlError, writeFileAtomically } from '@mrl/core';
import sharp from 'sharp';

/** One image-caption pair. `label` (optional) is a class name for zero-shot evaluation. */
export interface PairRecord {
  /** Absolute path of the image (any format sharp reads: PNG, JPEG, WebP, SVG, ...). */
  image: string;
  caption: string;
  label?: string;
  /** Stable key for the test split and the pixel cache (default: the image path). */
  key: string;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.svg', '.avif']);

/**
 * Reads a JSONL file of `{"image": path, "caption": text, "label"?: name}` lines; relative image
 * paths start from the file's folder. Every image must exist: a missing one is named.
 *
 * @example
 * ```ts
 * const pairs = await readPairsJsonl('data/pairs.jsonl');
 * ```
 */
export async function readPairsJsonl(file: string): Promise<PairRecord[]> {
  const path = resolve(file);
  try {
    await stat(path);
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `no pairs file at ${path}.`,
      'Pass a JSONL file with one {"image": ..., "caption": ...} object per line.',
      { cause },
    );
  }
  const base = dirname(path);
  const out: PairRecord[] = [];
  let lineNo = 0;
  for await (const line of createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity })) {
    lineNo += 1;
    if (line.trim() === '') continue;
    let row: { image?: unknown; caption?: unknown; label?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `${path}:${lineNo} is not valid JSON: ${(cause as Error).message}.`,
        undefined,
        { cause },
      );
    }
    if (typeof row.image !== 'string' || typeof row.caption !== 'string') {
      throw new MrlError(
        'corrupt-file',
        `${path}:${lineNo} needs string fields "image" and "caption".`,
        'Write lines like {"image": "cat.png", "caption": "a cat on a mat"}.',
      );
    }
    const image = resolve(base, row.image);
    await requireImage(image, `${path}:${lineNo}`);
    out.push({
      image,
      caption: row.caption,
      key: relative(base, image),
      ...(typeof row.label === 'string' ? { label: row.label } : {}),
    });
  }
  return out;
}

/**
 * Reads a folder of images with sidecar captions: `cat.png` + `cat.txt`. Sub-folders are walked;
 * the first path segment below `dir` becomes the label. A caption without its image is an
 * error naming the missing file; an image without a caption is skipped.
 */
export async function readSidecarFolder(dir: string): Promise<PairRecord[]> {
  const root = resolve(dir);
  const files = await walk(root, false);
  const byStem = new Map<string, string>();
  for (const f of files)
    if (IMAGE_EXTENSIONS.has(extname(f).toLowerCase())) byStem.set(f.slice(0, -extname(f).length), f);
  const out: PairRecord[] = [];
  for (const f of files.filter((x) => extname(x).toLowerCase() === '.txt').sort()) {
    const stem = f.slice(0, -4);
    const image = byStem.get(stem);
    if (image === undefined) {
      throw new MrlError(
        'missing-file',
        `caption ${f} has no image: expected ${stem}.png (or .jpg, .webp, .svg, ...).`,
        'Add the image next to its caption, or remove the caption file.',
      );
    }
    const caption = (await readFile(f, 'utf8')).trim();
    const rel = relative(root, image);
    const parts = rel.split(sep);
    out.push({ image, caption, key: rel, ...(parts.length > 1 ? { label: parts[0]! } : {}) });
  }
  return out;
}

async function requireImage(path: string, where: string): Promise<void> {
  try {
    await stat(path);
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `image ${path} (referenced at ${where}) does not exist.`,
      'Fix the path in the pairs file, or remove the line.',
      { cause },
    );
  }
}

async function walk(dir: string, followLinks: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path, followLinks)));
    else if (entry.isFile() || (followLinks && entry.isSymbolicLink())) out.push(path);
  }
  return out;
}

/** Debian `openclipart-svg`'s install folder. */
export const OPENCLIPART_DEFAULT_DIR = '/usr/share/openclipart/svg';

/** Subject keywords that say nothing about the drawing. */
const GENERIC_KEYWORDS = new Set([
  'unsorted',
  'clip art',
  'clipart',
  'image',
  'media',
  'svg',
  'png',
  'public domain',
  'externalsource',
  'openclipart',
]);

function decodeEntities(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/g, '&');
}

/**
 * Title and keywords from an SVG's RDF metadata (`cc:Work/dc:title`, `dc:subject/rdf:Bag/rdf:li`).
 * The agents' titles (publisher, creator) are not the drawing's.
 */
export function svgCaption(svg: string): { title: string; keywords: string[] } {
  const work = /<cc:Work[\s\S]*?<\/cc:Work>/.exec(svg)?.[0] ?? '';
  const withoutAgents = work.replace(/<cc:Agent[\s\S]*?<\/cc:Agent>/g, '');
  const title = decodeEntities(/<dc:title>([\s\S]*?)<\/dc:title>/.exec(withoutAgents)?.[1] ?? '').trim();
  const subject = /<dc:subject>([\s\S]*?)<\/dc:subject>/.exec(withoutAgents)?.[1] ?? '';
  const keywords: string[] = [];
  for (const match of subject.matchAll(/<rdf:li>([\s\S]*?)<\/rdf:li>/g)) {
    const k = decodeEntities(match[1]!).trim().toLowerCase();
    if (k !== '' && !GENERIC_KEYWORDS.has(k) && !keywords.includes(k)) keywords.push(k);
  }
  return { title, keywords };
}

/**
 * The openclipart drawings as pairs: caption = title + keywords from the SVG metadata, label =
 * the top-level folder (`animals`, `food`, ...). Symbolic links (the same drawing filed in a
 * sub-category) and drawings with neither title nor keywords are skipped.
 */
export async function readOpenclipart(
  dir: string = OPENCLIPART_DEFAULT_DIR,
  options: { limit?: number } = {},
): Promise<PairRecord[]> {
  const root = resolve(dir);
  try {
    await lstat(root);
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `no openclipart drawings at ${root}.`,
      'Install them with `apt-get install openclipart-svg` (or point --data-dir at a folder of openclipart SVGs), or train on your own pairs: --data pairs.jsonl ({"image": path, "caption": text} per line) or --data a folder of images with .txt captions beside them.',
      { cause },
    );
  }
  const files = (await walk(root, false)).filter((f) => f.endsWith('.svg')).sort();
  const out: PairRecord[] = [];
  for (const file of files) {
    const { title, keywords } = svgCaption(await readFile(file, 'utf8'));
    const caption = [title, keywords.join(' ')]
      .filter((s) => s !== '')
      .join(' ')
      .replace(/[_\s]+/g, ' ')
      .trim();
    if (caption === '') continue;
    const key = relative(root, file);
    out.push({ image: file, caption, label: key.split(sep)[0]!, key });
    if (options.limit !== undefined && out.length >= options.limit) break;
  }
  if (out.length === 0)
    throw new MrlError(
      'missing-file',
      `no captioned SVG drawings under ${root}.`,
      'Install them with `apt-get install openclipart-svg`.',
    );
  return out;
}

/** FNV-1a 32-bit hash of a string: a split that depends only on the file's path, never on order. */
export function pathHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A fixed held-out split: a pair is in the test set when the hash of its key falls in the
 * first `testFraction` of the 32-bit range, so adding or removing files never moves the others.
 */
export function splitPairs<T extends { key: string }>(
  pairs: readonly T[],
  testFraction = 0.1,
): { train: T[]; test: T[] } {
  if (!(testFraction > 0 && testFraction < 1))
    throw new MrlError('invalid-argument', `testFraction must be in (0, 1), got ${testFraction}.`);
  const limit = testFraction * 2 ** 32;
  const train: T[] = [];
  const test: T[] = [];
  for (const p of pairs) (pathHash(p.key) < limit ? test : train).push(p);
  return { train, test };
}

/** Decoded images, [count, size, size, 3] uint8 RGB on white, row-major. */
export interface PixelSet {
  pixels: Uint8Array;
  count: number;
  size: number;
  /** Indices of images that could not be decoded (left white); callers usually drop them. */
  failed: number[];
}

/** The pairs and pixels without the images that failed to decode. */
export function dropFailed<T>(pairs: readonly T[], set: PixelSet): { pairs: T[]; pixels: PixelSet } {
  if (set.failed.length === 0) return { pairs: [...pairs], pixels: set };
  const bad = new Set(set.failed);
  const stride = set.size * set.size * 3;
  const keep = pairs.map((_, i) => i).filter((i) => !bad.has(i));
  const pixels = new Uint8Array(keep.length * stride);
  keep.forEach((i, r) => pixels.set(set.pixels.subarray(i * stride, (i + 1) * stride), r * stride));
  return { pairs: keep.map((i) => pairs[i]!), pixels: { pixels, count: keep.length, size: set.size, failed: [] } };
}

/**
 * Decodes one image (SVG rasterised) to `size` x `size` RGB, letterboxed on white; transparent
 * areas become white.
 */
export async function rasterise(path: string, size: number): Promise<Uint8Array> {
  try {
    const { data } = await sharp(path, { limitInputPixels: false })
      .resize(size, size, { fit: 'contain', background: { r: 255, g: 255, b: 255, alpha: 1 } })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (data.length !== size * size * 3) throw new Error(`decoded ${data.length} bytes, expected ${size * size * 3}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (cause) {
    const missing =
      (cause as NodeJS.ErrnoException).code === 'ENOENT' ||
      /no such file|missing/i.test(String((cause as Error).message));
    throw new MrlError(
      missing ? 'missing-file' : 'corrupt-file',
      missing ? `image ${path} does not exist.` : `image ${path} could not be decoded: ${(cause as Error).message}.`,
      undefined,
      { cause },
    );
  }
}

/**
 * Decodes every pair's image once, `concurrency` at a time. With `cacheFile`, the pixels are
 * stored there and read back on the next run, so epochs and runs never rasterise again. The cache
 * is keyed by the images' keys, paths, byte sizes and modification times and the size, so an
 * image edited in place is decoded again; a SHA-256 of its payload catches a damaged cache file,
 * which is then rebuilt (layout: 64-byte hex key digest, 64-byte hex payload digest, uint32 count
 * of failed images, their uint32 indices, then the pixels). Images that fail to decode (a few
 * openclipart SVGs librsvg rejects) are reported by `onSkip`, listed in `failed` and left white;
 * pass `strict` to throw instead. A missing file always throws.
 */
export async function decodePairs(
  pairs: readonly PairRecord[],
  size: number,
  options: {
    cacheFile?: string;
    concurrency?: number;
    strict?: boolean;
    onProgress?: (done: number, total: number) => void;
    onSkip?: (path: string, why: string) => void;
  } = {},
): Promise<PixelSet> {
  const stride = size * size * 3;
  // What identifies an image's content cheaply: its size in bytes and modification time.
  const fingerprint = async (path: string): Promise<string> => {
    try {
      const st = await stat(path);
      return `${st.size}\t${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  const digest =
    options.cacheFile === undefined
      ? ''
      : createHash('sha256')
          .update(`pixels/2\n${size}\n`)
          .update(
            (await Promise.all(pairs.map(async (p) => `${p.key}\t${p.image}\t${await fingerprint(p.image)}`))).join(
              '\n',
            ),
          )
          .digest('hex');
  if (options.cacheFile !== undefined) {
    try {
      const buffer = await readFile(options.cacheFile);
      if (buffer.length >= 132 && buffer.subarray(0, 64).toString('latin1') === digest) {
        const failedCount = buffer.readUInt32LE(128);
        const start = 132 + 4 * failedCount;
        const payload = createHash('sha256').update(buffer.subarray(128)).digest('hex');
        if (
          buffer.length === start + pairs.length * stride &&
          buffer.subarray(64, 128).toString('latin1') === payload
        ) {
          const failed = Array.from({ length: failedCount }, (_, i) => buffer.readUInt32LE(132 + 4 * i));
          return {
            pixels: new Uint8Array(buffer.buffer, buffer.byteOffset + start, pairs.length * stride),
            count: pairs.length,
            size,
            failed,
          };
        }
      }
    } catch {
      // No cache yet: decode below.
    }
  }
  const pixels = new Uint8Array(pairs.length * stride);
  const failed: number[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < pairs.length) {
      const i = next++;
      const pair = pairs[i]!;
      try {
        pixels.set(await rasterise(pair.image, size), i * stride);
      } catch (error) {
        if (options.strict === true || !MrlError.is(error) || error.kind === 'missing-file') throw error;
        pixels.fill(255, i * stride, (i + 1) * stride);
        failed.push(i);
        options.onSkip?.(pair.image, error.message);
      }
      done += 1;
      if (done % 250 === 0 || done === pairs.length) options.onProgress?.(done, pairs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  if (options.cacheFile !== undefined) {
    await mkdir(dirname(options.cacheFile), { recursive: true });
    failed.sort((a, b) => a - b);
    const start = 132 + 4 * failed.length;
    const out = Buffer.alloc(start + pixels.length);
    out.write(digest, 0, 'latin1');
    out.writeUInt32LE(failed.length, 128);
    failed.forEach((f, i) => out.writeUInt32LE(f, 132 + 4 * i));
    out.set(pixels, start);
    out.write(createHash('sha256').update(out.subarray(128)).digest('hex'), 64, 'latin1');
    await writeFileAtomically(options.cacheFile, out);
  }
  return { pixels, count: pairs.length, size, failed: failed.sort((a, b) => a - b) };
}

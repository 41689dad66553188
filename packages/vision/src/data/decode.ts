import { MrlError, type Random } from '@mrl/core';
import sharp, { type OutputInfo } from 'sharp';

/** How an image becomes a float array [size, size, channels]. */
export interface ImageTransform {
  /** Output height and width in pixels. */
  size: number;
  /** 1: grey (luminance), 3: sRGB. Alpha is dropped, grey images are repeated to 3 channels. */
  channels: 1 | 3;
  /**
   * `centre`: crop the centre square of `cropFraction` of the shorter side, then resize (eval);
   * `random-resized`: Inception-style crop of random area `scale` and aspect `ratio`, then resize
   * (training); `resize`: stretch the whole image.
   */
  crop: 'centre' | 'random-resized' | 'resize';
  /** Centre crop: fraction of the shorter side kept (default 0.875, i.e. 224 of 256). */
  cropFraction?: number;
  /** Random-resized crop: area fraction range (default [0.08, 1]). */
  scale?: readonly [number, number];
  /** Random-resized crop: aspect ratio range (default [3/4, 4/3]). */
  ratio?: readonly [number, number];
  /** Mirror left-right with probability 0.5 (training). */
  flip?: boolean;
  /** Per-channel normalisation (x / 255 - mean) / std; default mean 0, std 1 (values in [0, 1]). */
  mean?: readonly number[];
  std?: readonly number[];
}

/** ImageNet statistics, for RGB models. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The centre square of `fraction` of the shorter side. */
export function centreCropBox(width: number, height: number, fraction = 0.875): CropBox {
  if (!(fraction > 0 && fraction <= 1))
    throw new MrlError('invalid-config', `cropFraction must be in (0, 1], got ${fraction}.`);
  const side = Math.max(1, Math.round(Math.min(width, height) * fraction));
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), width: side, height: side };
}

/**
 * The random-resized-crop box (Szegedy et al. 2015; torchvision's `RandomResizedCrop`): up to 10
 * tries at a random area and log-uniform aspect ratio, else the centre crop of the whole image.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  random: Random,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1))
    throw new MrlError('invalid-config', `scale must satisfy 0 < min <= max <= 1, got [${scale.join(', ')}].`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1]))
    throw new MrlError('invalid-config', `ratio must satisfy 0 < min <= max, got [${ratio.join(', ')}].`);
  const area = width * height;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * random());
    const aspect = Math.exp(Math.log(ratio[0]) + (Math.log(ratio[1]) - Math.log(ratio[0])) * random());
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return {
        left: Math.floor(random() * (width - w + 1)),
        top: Math.floor(random() * (height - h + 1)),
        width: w,
        height: h,
      };
    }
  }
  return centreCropBox(width, height, 1);
}

function corrupt(source: string, cause: unknown): MrlError {
  return new MrlError(
    'corrupt-file',
    `cannot decode image ${source}: ${(cause as Error).message}.`,
    'Replace or delete the file, or set skipCorrupt to skip unreadable images (the number skipped is reported).',
    { cause },
  );
}

/**
 * Decodes one image file (JPEG, PNG, WebP, SVG, ... whatever libvips reads) with sharp, crops,
 * resizes, optionally flips, and normalises it. Returns row-major [size, size, channels] floats.
 * A truncated or unreadable file throws a `corrupt-file` MrlError that names it.
 *
 * @example
 * ```ts
 * const pixels = await decodeImage('astronaut.png', { size: 32, channels: 3, crop: 'centre' });
 * ```
 */
export async function decodeImage(
  source: string | Buffer,
  transform: ImageTransform,
  random?: Random,
): Promise<Float32Array> {
  const name = typeof source === 'string' ? source : '<buffer>';
  const { size, channels } = transform;
  if (!Number.isInteger(size) || size < 1)
    throw new MrlError('invalid-config', `image size must be a positive integer, got ${size}.`);
  const needsRandom = transform.crop === 'random-resized' || transform.flip === true;
  if (needsRandom && random === undefined)
    throw new MrlError('invalid-argument', `decodeImage(${name}): random crops and flips need a seeded random stream.`);
  let raw: { data: Buffer; info: OutputInfo };
  try {
    const meta = await sharp(source, { failOn: 'truncated' }).metadata();
    const width = meta.width;
    const height = meta.height;
    if (width === undefined || height === undefined) throw new Error('the file has no image size');
    const box =
      transform.crop === 'centre'
        ? centreCropBox(width, height, transform.cropFraction ?? 0.875)
        : transform.crop === 'random-resized'
          ? randomResizedCropBox(width, height, random!, transform.scale, transform.ratio)
          : { left: 0, top: 0, width, height };
    let pipeline = sharp(source, { failOn: 'truncated' }).extract(box).resize(size, size, { fit: 'fill' });
    if (transform.flip === true && random!() < 0.5) pipeline = pipeline.flop();
    pipeline = channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
    raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (cause) {
    if (cause instanceof MrlError) throw cause;
    throw corrupt(name, cause);
  }
  const { data, info } = raw;
  const stride = info.channels;
  const mean = transform.mean ?? [];
  const std = transform.std ?? [];
  const out = new Float32Array(size * size * channels);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < channels; c++) {
      // Grey sources repeat their one channel; alpha (the last channel of 2 or 4) is ignored.
      const from = stride < 3 ? 0 : c;
      const value = data[p * stride + from]! / 255;
      out[p * channels + c] = (value - (mean[c] ?? 0)) / (std[c] ?? 1);
    }
  }
  return out;
}

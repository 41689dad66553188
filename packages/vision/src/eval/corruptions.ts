import { createRandom, MrlError } from '@mrl/core';

/** Corruptions of the robustness evaluation (after Hendrycks & Dietterich 2019, ImageNet-C). */
export const CORRUPTION_NAMES = ['gaussian-noise', 'gaussian-blur', 'contrast'] as const;
export type CorruptionName = (typeof CORRUPTION_NAMES)[number];

export interface Corruption {
  name: CorruptionName;
  /** 1 (mild) to 5 (severe). */
  severity: number;
}

/** Severity parameters: noise std, blur sigma (pixels), contrast factor. */
const PARAMETERS: Record<CorruptionName, readonly number[]> = {
  'gaussian-noise': [0.04, 0.08, 0.12, 0.18, 0.26],
  'gaussian-blur': [0.5, 0.75, 1, 1.5, 2],
  contrast: [0.6, 0.45, 0.3, 0.2, 0.1],
};

export const DEFAULT_CORRUPTIONS: readonly Corruption[] = [
  { name: 'gaussian-noise', severity: 3 },
  { name: 'gaussian-blur', severity: 3 },
  { name: 'contrast', severity: 3 },
];

/** Parses `gaussian-noise:3,contrast:5` (severity defaults to 3). */
export function parseCorruptions(spec: string): Corruption[] {
  return spec
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((part) => {
      const [name, level] = part.trim().split(':');
      if (!(CORRUPTION_NAMES as readonly string[]).includes(name!)) {
        throw new MrlError(
          'invalid-argument',
          `unknown corruption '${name}' in '${spec}'.`,
          `Known corruptions: ${CORRUPTION_NAMES.join(', ')} (optionally :severity 1-5).`,
        );
      }
      const severity = level === undefined ? 3 : Number(level);
      if (!Number.isInteger(severity) || severity < 1 || severity > 5) {
        throw new MrlError(
          'invalid-argument',
          `corruption severity must be an integer 1-5, got '${level}' in '${spec}'.`,
        );
      }
      return { name: name as CorruptionName, severity };
    });
}

function gaussianKernel(sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  return k;
}

/**
 * Returns a corrupted copy of images in [0, 1], row-major [count, height, width, channels].
 * Noise is drawn from a stream keyed by `seed`, the corruption and the severity, so every run
 * (and every model) sees the same corrupted test set.
 */
export function corruptImages(
  images: Float32Array,
  shape: readonly [number, number, number, number],
  corruption: Corruption,
  seed = 0,
): Float32Array {
  const [count, height, width, channels] = shape;
  if (images.length !== count * height * width * channels) {
    throw new MrlError('invalid-argument', `corruptImages: ${images.length} values for shape [${shape.join(', ')}].`);
  }
  const value = PARAMETERS[corruption.name]?.[corruption.severity - 1];
  if (value === undefined)
    throw new MrlError('invalid-argument', `no corruption '${corruption.name}' at severity ${corruption.severity}.`);
  const out = new Float32Array(images.length);
  const size = height * width * channels;
  if (corruption.name === 'gaussian-noise') {
    const random = createRandom(seed, 7, CORRUPTION_NAMES.indexOf(corruption.name), corruption.severity);
    for (let i = 0; i < images.length; i += 2) {
      // Box-Muller: two normal samples per pair of uniforms.
      const u = Math.max(random(), 1e-12);
      const r = Math.sqrt(-2 * Math.log(u)) * value;
      const t = 2 * Math.PI * random();
      out[i] = Math.min(1, Math.max(0, images[i]! + r * Math.cos(t)));
      if (i + 1 < images.length) out[i + 1] = Math.min(1, Math.max(0, images[i + 1]! + r * Math.sin(t)));
    }
  } else if (corruption.name === 'contrast') {
    for (let n = 0; n < count; n++) {
      let mean = 0;
      for (let i = 0; i < size; i++) mean += images[n * size + i]!;
      mean /= size;
      for (let i = 0; i < size; i++) out[n * size + i] = (images[n * size + i]! - mean) * value + mean;
    }
  } else {
    // Separable Gaussian blur with edge clamping.
    const k = gaussianKernel(value);
    const radius = (k.length - 1) / 2;
    const tmp = new Float32Array(size);
    for (let n = 0; n < count; n++) {
      const base = n * size;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          for (let c = 0; c < channels; c++) {
            let s = 0;
            for (let j = -radius; j <= radius; j++)
              s +=
                k[j + radius]! * images[base + (y * width + Math.min(width - 1, Math.max(0, x + j))) * channels + c]!;
            tmp[(y * width + x) * channels + c] = s;
          }
        }
      }
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          for (let c = 0; c < channels; c++) {
            let s = 0;
            for (let j = -radius; j <= radius; j++)
              s += k[j + radius]! * tmp[(Math.min(height - 1, Math.max(0, y + j)) * width + x) * channels + c]!;
            out[base + (y * width + x) * channels + c] = s;
          }
        }
      }
    }
  }
  return out;
}

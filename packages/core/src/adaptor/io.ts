import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MrlError } from '../errors.js';
import { writeFileAtomically } from '../io/atomic.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { AdaptorWeights } from './adaptor.js';
import { validateAdaptorConfig } from './config.js';

export const ADAPTOR_WEIGHTS_FILE = 'adaptor.safetensors';
export const ADAPTOR_CONFIG_FILE = 'adaptor.json';

/**
 * Writes an adaptor as `<dir>/adaptor.safetensors` (w1, b1, w2, b2, and the fixed `rotation` and
 * `mean` when the config has them; loads in Python with
 * `safetensors.numpy.load_file`) and `<dir>/adaptor.json` (its config), each atomically. The
 * weights go first, so a config on disk always has its weights beside it.
 *
 * @example await saveAdaptor('out/adaptor', await adaptor.weights(), { source: 'corpus.npy' });
 */
export async function saveAdaptor(
  dir: string,
  weights: AdaptorWeights,
  extra: Record<string, string | number | number[] | Record<string, unknown>> = {},
): Promise<void> {
  const { dim, hidden } = weights.config;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>([
    ['w1', { shape: [dim, hidden], data: weights.w1 }],
    ['b1', { shape: [hidden], data: weights.b1 }],
    ['w2', { shape: [hidden, dim], data: weights.w2 }],
    ['b2', { shape: [dim], data: weights.b2 }],
  ]);
  if (weights.rotation !== undefined) tensors.set('rotation', { shape: [dim, dim], data: weights.rotation });
  if (weights.mean !== undefined) tensors.set('mean', { shape: [dim], data: weights.mean });
  await writeSafetensors(join(dir, ADAPTOR_WEIGHTS_FILE), tensors, {
    format: 'mrl-matryoshka-adaptor',
    config: JSON.stringify(weights.config),
  });
  const text = `${JSON.stringify({ format: 'mrl-matryoshka-adaptor', version: 1, ...weights.config, ...extra }, null, 2)}\n`;
  await writeFileAtomically(join(dir, ADAPTOR_CONFIG_FILE), text);
}

/** Reads an adaptor written by {@link saveAdaptor}; every shape and value is checked. */
export async function loadAdaptor(dir: string): Promise<AdaptorWeights> {
  const configPath = join(dir, ADAPTOR_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `${configPath} does not exist: ${dir} is not an adaptor folder.`,
      'Pass the --out folder of mrl-cli adapt.',
      { cause },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new MrlError('corrupt-file', `${configPath} is not valid JSON: ${(cause as Error).message}.`, undefined, {
      cause,
    });
  }
  const config = validateAdaptorConfig(raw, configPath);
  const weightsPath = join(dir, ADAPTOR_WEIGHTS_FILE);
  const { tensors } = await readSafetensors(weightsPath);
  const { dim, hidden } = config;
  const expected: Record<string, number[]> = { w1: [dim, hidden], b1: [hidden], w2: [hidden, dim], b2: [dim] };
  if (config.rotation === 'pca') expected.rotation = [dim, dim];
  if (config.center === true) expected.mean = [dim];
  const out: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(expected)) {
    const t = tensors.get(name);
    const fix = 'Write the adaptor again with mrl-cli adapt.';
    if (t === undefined) throw new MrlError('corrupt-file', `${weightsPath} has no tensor '${name}'.`, fix);
    if (t.dtype !== 'F32' || t.shape.join(',') !== shape.join(',')) {
      throw new MrlError(
        'corrupt-file',
        `${weightsPath}: tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], ${configPath} needs F32 [${shape.join(', ')}].`,
        fix,
      );
    }
    const data = t.data as Float32Array;
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new MrlError('corrupt-file', `${weightsPath}: tensor '${name}' value ${bad} is ${data[bad]}.`, fix);
    }
    out[name] = data;
  }
  return {
    config,
    w1: out.w1!,
    b1: out.b1!,
    w2: out.w2!,
    b2: out.b2!,
    ...(out.rotation === undefined ? {} : { rotation: out.rotation }),
    ...(out.mean === undefined ? {} : { mean: out.mean }),
  };
}

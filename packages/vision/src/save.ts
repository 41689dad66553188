import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertFiniteTensors,
  assignVariables,
  createRandom,
  MrlError,
  readSafetensors,
  writeFileAtomically,
  writeSafetensors,
  type Encoder,
  type EncoderConfig,
} from '@mrl/core';
import type * as tf from '@tensorflow/tfjs';
import { buildVisionEncoder } from './models/registry.js';

/** File names inside a saved model folder. */
export const MODEL_CONFIG_FILE = 'config.json';
export const MODEL_WEIGHTS_FILE = 'weights.safetensors';

/**
 * Saves an encoder to a folder: `config.json` (the encoder config, enough to rebuild it) and
 * `weights.safetensors` (every variable, batch-norm running statistics included, under the
 * encoder's variable names).
 */
export async function saveVisionModel(
  dir: string,
  encoder: Encoder<tf.Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, variable] of encoder.variables())
    tensors.set(name, { shape: [...variable.shape], data: (await variable.data()) as Float32Array });
  await writeSafetensors(join(dir, MODEL_WEIGHTS_FILE), tensors, { format: 'mrl-vision-1', ...metadata });
  await writeFileAtomically(join(dir, MODEL_CONFIG_FILE), `${JSON.stringify(encoder.config, null, 2)}\n`);
}

/**
 * Rebuilds an encoder saved by {@link saveVisionModel}; every variable must be in the file with
 * its shape. `build` makes the encoder from the saved config: by default this package's
 * registry; the CLI passes one that also knows plug-in encoders.
 */
export async function loadVisionModel(
  dir: string,
  build: (config: EncoderConfig) => Encoder<tf.Tensor> = (config) => buildVisionEncoder(config, createRandom(0)),
): Promise<Encoder<tf.Tensor>> {
  const configPath = join(dir, MODEL_CONFIG_FILE);
  let config: EncoderConfig;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as EncoderConfig;
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MrlError(
      missing ? 'missing-file' : 'corrupt-file',
      `cannot read the model config ${configPath}: ${(cause as Error).message}.`,
      'Point to a folder written by saveVisionModel (or mrl-cli fit: <run-dir>/model).',
      { cause },
    );
  }
  const weightsPath = join(dir, MODEL_WEIGHTS_FILE);
  const { tensors } = await readSafetensors(weightsPath);
  assertFiniteTensors(tensors, weightsPath);
  const encoder = build(config);
  try {
    assignVariables(encoder.variables(), tensors, {
      source: weightsPath,
      fix: `The weights do not match ${configPath} (${config.architecture}); save the model again.`,
    });
  } catch (error) {
    encoder.dispose();
    throw error;
  }
  return encoder;
}

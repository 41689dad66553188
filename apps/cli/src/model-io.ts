import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assignVariables, createRandom, MrlError, readSafetensors, type Encoder, type EncoderConfig } from '@mrl/core';
import { MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import type { Registry } from './registry.js';

/**
 * Rebuilds the encoder saved in `<run-dir>/model` (config.json + weights.safetensors, the
 * layout of @mrl/vision's saveVisionModel) through the registry, so plug-in encoders load too.
 */
export async function loadModel(dir: string, registry: Registry): Promise<Encoder<tf.Tensor>> {
  const configPath = join(dir, MODEL_CONFIG_FILE);
  let config: EncoderConfig;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as EncoderConfig;
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MrlError(
      missing ? 'missing-file' : 'corrupt-file',
      missing ? `there is no trained model in ${dir} (${MODEL_CONFIG_FILE} is missing).` : `${configPath} is not valid JSON: ${(cause as Error).message}.`,
      missing ? 'Train one first with mrl-cli fit --run-dir <folder>, and pass the same --run-dir.' : 'Train the model again with mrl-cli fit.',
      { cause },
    );
  }
  const registration = registry.encoders.find((e) => e.name === config.architecture);
  if (registration === undefined) {
    throw new MrlError(
      'unknown-name',
      `the model in ${dir} is a '${config.architecture}' encoder, which no loaded module registers.`,
      'If a plug-in defined it, pass the same --plugin that trained it (runs record it in config.json).',
    );
  }
  const weightsPath = join(dir, MODEL_WEIGHTS_FILE);
  const { tensors } = await readSafetensors(weightsPath);
  const encoder = registration.create(config, createRandom(0)) as Encoder<tf.Tensor>;
  try {
    assignVariables(encoder.variables(), tensors, { source: weightsPath, fix: 'Train the model again with mrl-cli fit.' });
  } catch (error) {
    encoder.dispose();
    throw error;
  }
  return encoder;
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRandom, MrlError, type Encoder } from '@mrl/core';
import { loadVisionModel, MODEL_CONFIG_FILE } from '@mrl/vision';
import type * as tf from '@tensorflow/tfjs';
import type { Registry } from './registry.js';

/**
 * Rebuilds the encoder saved in `<run-dir>/model` by @mrl/vision's saveVisionModel, building it
 * through the registry so plug-in encoders load too.
 */
export async function loadModel(dir: string, registry: Registry): Promise<Encoder<tf.Tensor>> {
  if (!existsSync(join(dir, MODEL_CONFIG_FILE))) {
    throw new MrlError(
      'missing-file',
      `there is no trained model in ${dir} (${MODEL_CONFIG_FILE} is missing).`,
      'Train one first with mrl-cli fit --run-dir <folder>, and pass the same --run-dir.',
    );
  }
  return loadVisionModel(dir, (config) => {
    const registration = registry.encoders.find((e) => e.name === config.architecture);
    if (registration === undefined) {
      throw new MrlError(
        'unknown-name',
        `the model in ${dir} is a '${config.architecture}' encoder, which no loaded module registers.`,
        'If a plug-in defined it, pass the same --plugin that trained it (runs record it in config.json).',
      );
    }
    return registration.create(config, createRandom(0)) as Encoder<tf.Tensor>;
  });
}

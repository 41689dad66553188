import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import type { VariableMap } from '../module.js';
import type { NamedArray } from './safetensors.js';

/**
 * Loads saved tensors into a model's variables: every variable must find its tensor (under
 * `prefix + name`) with the same shape, and an error names the file and the tensor otherwise.
 * Checkpoints, saved models and single layers all restore through here.
 */
export function assignVariables(
  variables: VariableMap,
  tensors: ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>,
  options: { source: string; prefix?: string; fix?: string },
): void {
  const prefix = options.prefix ?? '';
  for (const [name, variable] of variables) {
    const key = `${prefix}${name}`;
    const saved = tensors.get(key);
    if (saved === undefined) {
      throw new MrlError('corrupt-file', `${options.source} has no tensor '${key}'.`, options.fix);
    }
    if (saved.shape.join(',') !== variable.shape.join(',')) {
      throw new MrlError(
        'corrupt-file',
        `${options.source}: tensor '${key}' has shape [${saved.shape.join(', ')}], the model needs [${variable.shape.join(', ')}].`,
        options.fix,
      );
    }
    tf.tidy(() => variable.assign(tf.tensor(saved.data, variable.shape, variable.dtype)));
  }
}

import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import { assignVariables } from './io/assign.js';
import { readSafetensors, writeSafetensors, type NamedArray } from './io/safetensors.js';
import type { VariableMap } from './module.js';
import type { Optimizer } from './optim/optimizer.js';

const CHECKPOINT_FORMAT = 'mrl-checkpoint/1';
const FILE_PATTERN = /^ckpt-(\d{8})\.safetensors$/;

export interface CheckpointInfo {
  step: number;
  path: string;
}

export function checkpointPath(dir: string, step: number): string {
  return join(dir, `ckpt-${String(step).padStart(8, '0')}.safetensors`);
}

/** Checkpoints in `dir`, oldest first; an absent folder has none. */
export async function listCheckpoints(dir: string): Promise<CheckpointInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => FILE_PATTERN.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

async function toArray(t: tf.Tensor): Promise<Omit<NamedArray, 'dtype'>> {
  const values = await t.data();
  const data = t.dtype === 'int32' ? new Int32Array(values) : new Float32Array(values);
  return { shape: [...t.shape], data };
}

/**
 * Writes model variables, optimiser state and the step to `<dir>/ckpt-<step>.safetensors`
 * atomically, then keeps only the newest `keep` checkpoints.
 */
export async function saveCheckpoint(options: {
  dir: string;
  step: number;
  variables: VariableMap;
  optimizer?: Optimizer;
  metadata?: Record<string, string>;
  keep?: number;
}): Promise<string> {
  const tensors = new Map<string, Omit<NamedArray, 'dtype'>>();
  for (const [name, v] of options.variables) tensors.set(`param/${name}`, await toArray(v));
  if (options.optimizer !== undefined) {
    const state = options.optimizer.getState();
    for (const [name, t] of state) tensors.set(`optim/${name}`, await toArray(t));
    tf.dispose([...state.values()].filter((t) => !(t instanceof tf.Variable)));
  }
  const path = checkpointPath(options.dir, options.step);
  await writeSafetensors(path, tensors, { ...options.metadata, format: CHECKPOINT_FORMAT, step: String(options.step) });
  const keep = options.keep ?? 3;
  const all = await listCheckpoints(options.dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(old.path, { force: true });
  return path;
}

export interface LoadedCheckpoint {
  step: number;
  path: string;
  metadata: Record<string, string>;
}

/**
 * Restores variables (and optimiser state) from a checkpoint file. Every model variable must be
 * present with its shape; a mismatch names the variable.
 */
export async function loadCheckpoint(
  path: string,
  variables: VariableMap,
  optimizer?: Optimizer,
): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new MrlError(
      'corrupt-file',
      `${path} is not an mrl checkpoint (format '${metadata.format ?? 'none'}').`,
      'Point to a ckpt-*.safetensors file written by mrl.',
    );
  }
  assignVariables(variables, tensors, {
    source: path,
    prefix: 'param/',
    fix: 'The checkpoint belongs to a different model configuration.',
  });
  if (optimizer !== undefined) {
    const state = new Map<string, tf.Tensor>();
    for (const [name, t] of tensors) {
      if (name.startsWith('optim/'))
        state.set(name.slice('optim/'.length), tf.tensor(t.data, t.shape, t.dtype === 'I32' ? 'int32' : 'float32'));
    }
    optimizer.setState(state);
    for (const t of state.values()) t.dispose();
  }
  return { step: Number(metadata.step), path, metadata };
}

import { readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import { assignVariables } from './io/assign.js';
import { assertFiniteTensors, readSafetensors, writeSafetensors, type NamedArray } from './io/safetensors.js';
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
 * Writes model variables, optimiser state, the step and the last loss to
 * `<dir>/ckpt-<step>.safetensors` atomically (with its SHA-256 checksum), then keeps only the
 * newest `keep` checkpoints. Weights holding NaN or Inf are refused (a 'non-finite-value'
 * MrlError naming the variable), so every checkpoint on disk is one a run can roll back to.
 */
export async function saveCheckpoint(options: {
  dir: string;
  step: number;
  variables: VariableMap;
  optimizer?: Optimizer;
  metadata?: Record<string, string>;
  keep?: number;
  /** Loss of the step that produced these weights, kept in the metadata. */
  loss?: number;
}): Promise<string> {
  const tensors = new Map<string, Omit<NamedArray, 'dtype'>>();
  for (const [name, v] of options.variables) {
    const array = await toArray(v);
    const bad = array.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new MrlError(
        'non-finite-value',
        `the weights diverged by step ${options.step}: variable '${name}' holds ${array.data[bad]} at element ${bad}; no checkpoint was written.`,
        'Lower the learning rate or add --clip-norm, then resume from the last checkpoint.',
      );
    }
    tensors.set(`param/${name}`, array);
  }
  if (options.optimizer !== undefined) {
    const state = options.optimizer.getState();
    for (const [name, t] of state) tensors.set(`optim/${name}`, await toArray(t));
    tf.dispose([...state.values()].filter((t) => !(t instanceof tf.Variable)));
  }
  const path = checkpointPath(options.dir, options.step);
  await writeSafetensors(path, tensors, {
    ...options.metadata,
    format: CHECKPOINT_FORMAT,
    step: String(options.step),
    ...(options.loss === undefined ? {} : { loss: String(options.loss) }),
  });
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
  assertFiniteTensors(tensors, path);
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

/**
 * Whether a checkpoint can be rolled back to: it reads, its checksum matches, its weights are
 * finite and the loss it recorded was finite. `reason` says why not.
 */
export async function checkpointHealth(path: string): Promise<{ ok: boolean; reason?: string; loss?: number }> {
  try {
    const { tensors, metadata } = await readSafetensors(path);
    assertFiniteTensors(tensors, path);
    const loss = metadata.loss === undefined ? undefined : Number(metadata.loss);
    if (loss !== undefined && !Number.isFinite(loss)) return { ok: false, reason: `its loss was ${metadata.loss}` };
    return loss === undefined ? { ok: true } : { ok: true, loss };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * The newest checkpoint in `dir` whose weights and recorded loss are finite (and whose checksum
 * matches), with the checkpoints newer than it that are not; undefined `good` when none is.
 */
export async function newestGoodCheckpoint(
  dir: string,
): Promise<{ good?: CheckpointInfo & { loss?: number }; bad: (CheckpointInfo & { reason: string })[] }> {
  const bad: (CheckpointInfo & { reason: string })[] = [];
  for (const info of (await listCheckpoints(dir)).reverse()) {
    const health = await checkpointHealth(info.path);
    if (health.ok) return { good: { ...info, ...(health.loss === undefined ? {} : { loss: health.loss }) }, bad };
    bad.push({ ...info, reason: health.reason ?? 'unreadable' });
  }
  return { bad };
}

/**
 * Moves checkpoints out of the resume order by renaming them to `<name>.<suffix>` (kept for
 * inspection, never listed again). Returns the new paths.
 */
export async function setCheckpointsAside(infos: readonly CheckpointInfo[], suffix: string): Promise<string[]> {
  const out: string[] = [];
  for (const info of infos) {
    const to = `${info.path}.${suffix}`;
    await rename(info.path, to);
    out.push(to);
  }
  return out;
}

/** The step of a checkpoint file name (`ckpt-00000120.safetensors` -> 120), or undefined. */
export function checkpointStep(path: string): number | undefined {
  const m = FILE_PATTERN.exec(basename(path));
  return m === null ? undefined : Number(m[1]);
}

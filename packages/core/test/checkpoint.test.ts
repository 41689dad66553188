import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointPath,
  listCheckpoints,
  loadCheckpoint,
  newestGoodCheckpoint,
  saveCheckpoint,
  setCheckpointsAside,
} from '../src/checkpoint.js';
import { MrlError } from '../src/errors.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { MlpEncoder } from '../src/mlp.js';
import type { VariableMap } from '../src/module.js';
import { AdamWOptimizer } from '../src/optim/adamw.js';
import { createRandom } from '../src/rng.js';

let root: string;
let counter = 0;
async function freshDir(): Promise<string> {
  counter += 1;
  const dir = join(root, `run${counter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  root = await mkdtemp(join(tmpdir(), 'mrl-checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function variables(values: { w: number[]; b: number[] }): VariableMap {
  return new Map<string, tf.Variable>([
    ['dense/w', tf.variable(tf.tensor2d(values.w, [2, 2]), true)],
    ['dense/b', tf.variable(tf.tensor1d(values.b), true)],
  ]);
}

function values(map: VariableMap): Record<string, number[]> {
  return Object.fromEntries([...map].map(([name, v]) => [name, Array.from(v.dataSync())]));
}

function disposeAll(map: VariableMap): void {
  for (const v of map.values()) v.dispose();
}

async function rejection(promise: Promise<unknown>): Promise<MrlError> {
  let thrown: unknown;
  try {
    await promise;
  } catch (e) {
    thrown = e;
  }
  expect(MrlError.is(thrown), `expected an MrlError, got ${String(thrown)}`).toBe(true);
  return thrown as MrlError;
}

describe('saveCheckpoint / listCheckpoints', () => {
  it('names files by zero-padded step and lists them oldest first', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    for (const step of [20, 3, 100]) await saveCheckpoint({ dir, step, variables: vars, keep: 10 });
    // Files that only look like checkpoints are ignored.
    await writeFile(join(dir, 'ckpt-7.safetensors'), 'x');
    await writeFile(join(dir, 'notes.txt'), 'x');
    const listed = await listCheckpoints(dir);
    expect(listed).toEqual([
      { step: 3, path: join(dir, 'ckpt-00000003.safetensors') },
      { step: 20, path: join(dir, 'ckpt-00000020.safetensors') },
      { step: 100, path: join(dir, 'ckpt-00000100.safetensors') },
    ]);
    expect(checkpointPath(dir, 100)).toBe(listed[2]!.path);
    disposeAll(vars);
  });

  it('lists no checkpoints for a folder that does not exist', async () => {
    expect(await listCheckpoints(join(root, 'never-created'))).toEqual([]);
  });

  it('prunes to the newest two with keep=2', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    for (const step of [1, 2, 3, 4, 5]) await saveCheckpoint({ dir, step, variables: vars, keep: 2 });
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([4, 5]);
    expect((await readdir(dir)).sort()).toEqual(['ckpt-00000004.safetensors', 'ckpt-00000005.safetensors']);
    disposeAll(vars);
  });

  it('keeps three checkpoints by default', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    for (const step of [10, 20, 30, 40]) await saveCheckpoint({ dir, step, variables: vars });
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([20, 30, 40]);
    disposeAll(vars);
  });

  it('writes atomically, leaving no temporary files in the folder', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 0.1 });
    const grads = new Map<string, tf.Tensor>([...vars].map(([n, v]) => [n, tf.onesLike(v)]));
    optimizer.apply(vars, grads, 0.1);
    // Rewriting the same step replaces the file in place.
    for (const step of [1, 2, 2, 3]) await saveCheckpoint({ dir, step, variables: vars, optimizer, keep: 5 });
    expect((await readdir(dir)).sort()).toEqual([
      'ckpt-00000001.safetensors',
      'ckpt-00000002.safetensors',
      'ckpt-00000003.safetensors',
    ]);
    tf.dispose([...grads.values()]);
    optimizer.dispose();
    disposeAll(vars);
  });

  it('stores parameters, optimiser state, step, format and user metadata under their keys', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 0.1 });
    const grads = new Map<string, tf.Tensor>([...vars].map(([n, v]) => [n, tf.onesLike(v)]));
    optimizer.apply(vars, grads, 0.1);
    const before = tf.memory().numTensors;
    const path = await saveCheckpoint({ dir, step: 7, variables: vars, optimizer, metadata: { run: 'abc' } });
    // Saving frees the step counter tensor that AdamW hands out.
    expect(tf.memory().numTensors).toBe(before);
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ run: 'abc', format: 'mrl-checkpoint/1', step: '7' });
    expect([...tensors.keys()].sort()).toEqual([
      'optim/adamw/step',
      'optim/dense/b/m',
      'optim/dense/b/v',
      'optim/dense/w/m',
      'optim/dense/w/v',
      'param/dense/b',
      'param/dense/w',
    ]);
    expect(Array.from(tensors.get('optim/adamw/step')!.data)).toEqual([1]);
    tf.dispose([...grads.values()]);
    optimizer.dispose();
    disposeAll(vars);
  });
});

describe('loadCheckpoint', () => {
  it('restores variables, optimiser state, step and metadata', async () => {
    const dir = await freshDir();
    const saved = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    const optimizer = new AdamWOptimizer({ type: 'adamw', lr: 0.1 });
    const grads = new Map<string, tf.Tensor>([...saved].map(([n, v]) => [n, tf.onesLike(v)]));
    optimizer.apply(saved, grads, 0.1);
    const path = await saveCheckpoint({ dir, step: 12, variables: saved, optimizer, metadata: { note: 'x' } });

    const target = variables({ w: [0, 0, 0, 0], b: [0, 0] });
    const restored = new AdamWOptimizer({ type: 'adamw', lr: 0.1 });
    const loaded = await loadCheckpoint(path, target, restored);
    expect(loaded).toEqual({ step: 12, path, metadata: { note: 'x', format: 'mrl-checkpoint/1', step: '12' } });
    expect(values(target)).toEqual(values(saved));

    // Both optimisers continue identically: moments and step count came back.
    optimizer.apply(saved, grads, 0.1);
    restored.apply(target, grads, 0.1);
    expect(values(target)).toEqual(values(saved));
    tf.dispose([...grads.values()]);
    optimizer.dispose();
    restored.dispose();
    disposeAll(saved);
    disposeAll(target);
  });

  it('names the variable whose shape differs from the model', async () => {
    const dir = await freshDir();
    const small = new MlpEncoder({ architecture: 'mlp', inputDim: 3, hidden: [4], embeddingDim: 2 }, createRandom(1));
    const path = await saveCheckpoint({ dir, step: 1, variables: small.variables() });
    const wide = new MlpEncoder({ architecture: 'mlp', inputDim: 3, hidden: [5], embeddingDim: 2 }, createRandom(1));
    const e = await rejection(loadCheckpoint(path, wide.variables()));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toBe(`${path}: tensor 'param/dense0/w' has shape [3, 4], the model needs [3, 5].`);
    small.dispose();
    wide.dispose();
  });

  it('names a variable the checkpoint lacks', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    const path = await saveCheckpoint({ dir, step: 1, variables: vars });
    const extra: VariableMap = new Map([...vars, ['head/w', tf.variable(tf.zeros([2]))]]);
    const e = await rejection(loadCheckpoint(path, extra));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toBe(`${path} has no tensor 'param/head/w'.`);
    disposeAll(extra);
  });

  it('rejects a safetensors file that is not an mrl checkpoint', async () => {
    const dir = await freshDir();
    const path = join(dir, 'ckpt-00000001.safetensors');
    await writeSafetensors(path, new Map([['param/dense/w', { shape: [2, 2], data: new Float32Array(4) }]]), {
      format: 'pt',
    });
    const vars = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    const e = await rejection(loadCheckpoint(path, vars));
    expect(e.kind).toBe('corrupt-file');
    expect(e.message).toBe(`${path} is not an mrl checkpoint (format 'pt').`);
    expect(values(vars)['dense/w']).toEqual([1, 2, 3, 4]);

    const bare = join(dir, 'bare.safetensors');
    await writeSafetensors(bare, new Map([['x', { shape: [1], data: new Float32Array(1) }]]));
    expect((await rejection(loadCheckpoint(bare, vars))).message).toBe(
      `${bare} is not an mrl checkpoint (format 'none').`,
    );
    disposeAll(vars);
  });
});

describe('checkpoints and divergence', () => {
  it('refuses to write NaN weights, naming the variable, and writes nothing', async () => {
    const dir = await freshDir();
    const vars = variables({ w: [1, 2, Number.NaN, 4], b: [0, 0] });
    await expect(saveCheckpoint({ dir, step: 7, variables: vars })).rejects.toSatisfy(
      (e: unknown) =>
        MrlError.is(e) &&
        e.kind === 'non-finite-value' &&
        e.message ===
          "the weights diverged by step 7: variable 'dense/w' holds NaN at element 2; no checkpoint was written.",
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses to load NaN weights naming the file and tensor', async () => {
    const dir = await freshDir();
    const path = join(dir, 'ckpt-00000003.safetensors');
    await writeSafetensors(
      path,
      new Map([
        ['param/dense/w', { shape: [2, 2], data: new Float32Array([1, Number.POSITIVE_INFINITY, 3, 4]) }],
        ['param/dense/b', { shape: [2], data: new Float32Array([0, 0]) }],
      ]),
      { format: 'mrl-checkpoint/1', step: '3' },
    );
    await expect(loadCheckpoint(path, variables({ w: [0, 0, 0, 0], b: [0, 0] }))).rejects.toThrow(
      `${path}: tensor 'param/dense/w' holds Infinity at element 1 of 4;`,
    );
  });

  it('newestGoodCheckpoint skips checkpoints with NaN weights, a non-finite loss or a bad checksum', async () => {
    const dir = await freshDir();
    const good = variables({ w: [1, 2, 3, 4], b: [5, 6] });
    await saveCheckpoint({ dir, step: 1, variables: good, loss: 0.7, keep: 10 });
    await saveCheckpoint({ dir, step: 2, variables: good, loss: 0.6, keep: 10 });
    // Step 3: a recorded loss of NaN; step 4: NaN weights written by another tool; step 5: a flipped byte.
    await saveCheckpoint({ dir, step: 3, variables: good, keep: 10, metadata: { loss: 'NaN' } });
    await writeSafetensors(
      checkpointPath(dir, 4),
      new Map([['param/dense/w', { shape: [1], data: new Float32Array([Number.NaN]) }]]),
      { format: 'mrl-checkpoint/1', step: '4' },
    );
    await saveCheckpoint({ dir, step: 5, variables: good, loss: 0.5, keep: 10 });
    const bytes = await readFile(checkpointPath(dir, 5));
    bytes[bytes.length - 3]! ^= 1;
    await writeFile(checkpointPath(dir, 5), bytes);
    const { good: found, bad } = await newestGoodCheckpoint(dir);
    expect(found).toMatchObject({ step: 2, loss: 0.6 });
    expect(bad.map((b) => b.step)).toEqual([5, 4, 3]);
    expect(bad[0]!.reason).toContain('failed its SHA-256 checksum');
    expect(bad[1]!.reason).toContain("tensor 'param/dense/w' holds NaN");
    expect(bad[2]!.reason).toBe('its loss was NaN');
    const aside = await setCheckpointsAside(bad, 'diverged');
    expect(aside).toEqual([5, 4, 3].map((s) => `${checkpointPath(dir, s)}.diverged`));
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([1, 2]);
  });
});

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MlpEncoder } from '../src/mlp.js';
import { OnnxGraph, readOnnxMetadata } from '@mrl/kernels';
import { mlpOnnxModel } from '@mrl/kernels';
import { createRandom } from '../src/rng.js';
import { expectClose } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';

const PYTHON = '/usr/bin/python3';
const hasOnnx = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'mrl-onnx-export-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('mlpOnnxModel', () => {
  const encoder = new MlpEncoder(
    { architecture: 'mlp', inputDim: 12, hidden: [10, 9], embeddingDim: 8 },
    createRandom(3),
  );
  const input = tf.randomNormal([5, 12], 0, 1, 'float32', 7) as tf.Tensor2D;

  it("runs in onnxruntime-node with mrl's embeddings, opset and nesting dims in the metadata", async () => {
    const path = join(dir, 'mlp.onnx');
    const bytes = mlpOnnxModel(encoder, [2, 4, 8]);
    await writeFile(path, bytes);
    const { opset, metadata } = readOnnxMetadata(bytes);
    expect(opset).toBe(17);
    expect(JSON.parse(metadata['mrl.nesting_dims']!)).toEqual([2, 4, 8]);
    expect(metadata['mrl.architecture']).toBe('mlp');
    const session = await ort.InferenceSession.create(path);
    const out = await session.run({ input: new ort.Tensor('float32', input.dataSync() as Float32Array, [5, 12]) });
    expectClose(out.embedding!.data as Float32Array, encoder.encode(input, false).dataSync(), 1e-5);
    await session.release();
  });

  it.skipIf(!hasOnnx)(
    'passes onnx.checker (full check) (skipped only where Debian python3-onnx is absent)',
    async () => {
      const path = join(dir, 'checked.onnx');
      await writeFile(path, mlpOnnxModel(encoder, [2, 4, 8]));
      const check = spawnSync(
        PYTHON,
        [
          '-c',
          'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")',
          path,
        ],
        { encoding: 'utf8' },
      );
      expect(check.stderr).toBe('');
      expect(check.stdout.trim()).toBe('ok');
    },
  );

  it('refuses nesting dims beyond d or out of order', () => {
    expectMrlError(
      () => mlpOnnxModel(encoder, [4, 16]),
      'invalid-argument',
      'nesting dims [4, 16] must be ascending positive integers up to d = 8.',
    );
    expectMrlError(
      () => mlpOnnxModel(encoder, [4, 2, 8]),
      'invalid-argument',
      'nesting dims [4, 2, 8] must be ascending positive integers up to d = 8.',
    );
  });
});

describe('OnnxGraph', () => {
  it('names a reused value name and an initializer whose shape does not fit its values', () => {
    const g = new OnnxGraph('g');
    g.input('x', 'float32', ['batch', 2]);
    expectMrlError(
      () => g.input('x', 'float32', [1]),
      'invalid-argument',
      "ONNX graph 'g' already has a value named 'x'.",
    );
    expectMrlError(
      () => g.initializer('w', new Float32Array(5), [2, 3]),
      'invalid-argument',
      "ONNX initializer 'w' has shape [2, 3] but 5 values.",
    );
  });
});

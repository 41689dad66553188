import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { mlpOnnxModel, initBackend } from '@mrl/kernels';
import { MatryoshkaAdaptor, applyAdaptor, type AdaptorWeights } from '../src/adaptor/adaptor.js';
import { validateAdaptorConfig } from '../src/adaptor/config.js';
import { loadAdaptor, saveAdaptor } from '../src/adaptor/io.js';
import { adaptorOnnx, withAdaptorOnnx } from '../src/adaptor/onnx.js';
import { applyPca, fitPca } from '../src/adaptor/pca.js';
import { AdaptorModel, adaptorBatches, fitAdaptor } from '../src/adaptor/train.js';
import { MlpEncoder } from '../src/mlp.js';
import { truncateAndNormalize } from '../src/prefix.js';
import { createRandom } from '../src/rng.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { expectClose, randomArray } from './helpers/close.js';

/** Rows with a clear common offset (as unit-norm embeddings of one model have), [n, d]. */
function offsetRows(n: number, d: number, seed: number): Float32Array {
  const data = Float32Array.from(randomArray(n * d, seed));
  for (let i = 0; i < data.length; i++) data[i]! += 0.5 + 0.1 * (i % d);
  return data;
}

/** The column means of rows [n, d], in float64 then rounded once, as fitAdaptor stores them. */
function columnMean(data: Float32Array, d: number): Float32Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < data.length; i++) mean[i % d]! += data[i]!;
  return Float32Array.from(mean, (v) => v / (data.length / d));
}

/** A centred adaptor with non-zero trained-like weights (so g is really in every path). */
function centredWeights(d: number, hidden: number, rotation?: Float32Array): AdaptorWeights {
  const mean = Float32Array.from(randomArray(d, 41), (v) => 0.3 + v);
  return {
    config: { dim: d, hidden, dims: [2, d], rotation: rotation === undefined ? 'none' : 'pca', center: true },
    w1: Float32Array.from(randomArray(d * hidden, 42)),
    b1: Float32Array.from(randomArray(hidden, 43), (v) => 0.1 * v),
    w2: Float32Array.from(randomArray(hidden * d, 44), (v) => 0.5 * v),
    b2: Float32Array.from(randomArray(d, 45), (v) => 0.1 * v),
    ...(rotation === undefined ? {} : { rotation }),
    mean,
  };
}

describe.each(['cpu', 'wasm'] as const)('centred Matryoshka-Adaptor on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend, backend === 'wasm' ? { kernels: 'wasm' } : {});
  });

  it('zero-initialised with the PCA rotation, is exactly the PCA map of the centred rows', async () => {
    const d = 6;
    const n = 40;
    const data = offsetRows(n, d, 9);
    const rows = { data, rows: n, dim: d };
    const pca = fitPca(rows);
    const adaptor = new MatryoshkaAdaptor(
      { dim: d, hidden: 5, dims: [2, 6], rotation: 'pca', center: true },
      createRandom(2),
      Float32Array.from(pca.directions),
      Float32Array.from(pca.mean),
    );
    const expected = applyPca(pca, rows).data; // (e - mean) V, the PCA scores
    const out = tf.tidy(() => adaptor.apply(tf.tensor2d(data, [n, d])).dataSync());
    expectClose(out, expected, 1e-5);
    const weights = await adaptor.weights();
    expectClose(applyAdaptor(weights, rows).data, expected, 1e-5);
    // The offset is large: without the mean the map would be far from the PCA scores.
    expect(Math.abs(applyPca(pca, rows, { center: false }).data[0]! - expected[0]!)).toBeGreaterThan(0.1);
    // Centring alone (no rotation): the rows minus the mean, exactly.
    const mean = Float32Array.from(pca.mean);
    const plain = new MatryoshkaAdaptor(
      { dim: d, hidden: 5, dims: [2, 6], center: true },
      createRandom(2),
      undefined,
      mean,
    );
    const shifted = Float32Array.from(data, (v, i) => v - mean[i % d]!);
    expect(Array.from(tf.tidy(() => plain.apply(tf.tensor2d(data, [n, d])).dataSync()))).toEqual(Array.from(shifted));
    expect(Array.from(applyAdaptor(await plain.weights(), rows).data)).toEqual(Array.from(shifted));
    expect(() => new MatryoshkaAdaptor({ dim: d, hidden: 5, dims: [2, 6], center: true }, createRandom(2))).toThrow(
      'an adaptor with center true needs a mean vector.',
    );
    expect(() => new MatryoshkaAdaptor({ dim: d, hidden: 5, dims: [2, 6] }, createRandom(2), undefined, mean)).toThrow(
      'an adaptor with center false takes no mean vector.',
    );
    adaptor.dispose();
    plain.dispose();
  });

  it('a trained-like centred adaptor gives the same rows on tensors as on plain rows', async () => {
    const d = 6;
    const n = 30;
    const data = offsetRows(n, d, 12);
    const pca = fitPca({ data, rows: n, dim: d });
    for (const w of [centredWeights(d, 7), centredWeights(d, 7, Float32Array.from(pca.directions))]) {
      const adaptor = new MatryoshkaAdaptor(w.config, createRandom(1), w.rotation, w.mean);
      adaptor.assign(w);
      const out = tf.tidy(() => adaptor.apply(tf.tensor2d(data, [n, d])).dataSync());
      expectClose(out, applyAdaptor(w, { data, rows: n, dim: d }).data, 1e-5);
      adaptor.dispose();
    }
  });

  it('trains on centred targets: at the PCA start, the full-dim terms and the reconstruction are zero', async () => {
    const d = 8;
    const n = 64;
    const data = offsetRows(n, d, 21);
    const corpus = { data, rows: n, dim: d };
    const pca = fitPca(corpus);
    const adaptor = new MatryoshkaAdaptor(
      { dim: d, hidden: 8, dims: [2, 4, 8], rotation: 'pca', center: true },
      createRandom(3),
      Float32Array.from(pca.directions),
      Float32Array.from(pca.mean),
    );
    const model = new AdaptorModel(adaptor, { lossWeights: { pairwise: 1, topK: 1, reconstruction: 1 } });
    const batch = adaptorBatches(corpus).batch(Int32Array.from({ length: n }, (_, i) => i));
    const before = tf.memory().numTensors;
    const parts = tf.tidy(() => {
      const { parts } = model.loss(batch);
      return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.dataSync()[0]!]));
    });
    expect(tf.memory().numTensors).toBe(before);
    // f(e) = (e - mean) V: its full-dim cosines are the centred cosines, the targets.
    expect(parts['pairwise/loss/8']).toBeLessThan(1e-5);
    expect(parts['topk/loss/8']).toBeLessThan(1e-5);
    expect(parts.reconstruction).toBeLessThan(1e-10);
    // The uncentred cosines differ a lot for these rows: the loss would see them at 2 dims.
    expect(parts['pairwise/loss/2']).toBeGreaterThan(0.05);
    batch.dispose();
    adaptor.dispose();
  });
});

describe('centred adaptor: fit, ONNX and files', () => {
  beforeAll(async () => {
    await initBackend('wasm', { kernels: 'wasm' });
  });

  it('fitAdaptor({ center: true }) stores the corpus mean and trains from the centred PCA map', async () => {
    const d = 8;
    const n = 200;
    const data = offsetRows(n, d, 5);
    const { adaptor, snapshots } = await fitAdaptor({
      corpus: { data, rows: n, dim: d },
      dims: [2, 4, 8],
      rotation: 'pca',
      center: true,
      steps: 3,
      batchSize: 64,
      snapshotEvery: 3,
    });
    const weights = await adaptor.weights();
    expect(weights.config.center).toBe(true);
    expectClose(weights.mean!, columnMean(data, d), 1e-6);
    expect(Array.from(snapshots[0]!.weights.mean!)).toEqual(Array.from(weights.mean!));
    // Trained (g is no longer zero), still equal on tensors and on plain rows.
    expect(Math.max(...weights.w2.map(Math.abs))).toBeGreaterThan(0);
    const out = tf.tidy(() => adaptor.apply(tf.tensor2d(data, [n, d])).dataSync());
    expectClose(out, applyAdaptor(weights, { data, rows: n, dim: d }).data, 1e-5);
    adaptor.dispose();
  });

  it('ONNX Runtime gives what applyAdaptor gives, standalone and appended to a model, with and without a rotation', async () => {
    const d = 8;
    const n = 9;
    const data = offsetRows(n, d, 31);
    const rows = { data, rows: n, dim: d };
    const pca = fitPca(rows);
    const variants = [centredWeights(d, 12), centredWeights(d, 12, Float32Array.from(pca.directions))];
    for (const w of variants) {
      const session = await ort.InferenceSession.create(adaptorOnnx(w));
      const result = await session.run({ embeddings: new ort.Tensor('float32', data, [n, d]) });
      expectClose(result.adapted!.data as Float32Array, applyAdaptor(w, rows).data, 1e-5);
      await session.release();
    }
    // The mean is really in the graph: the same weights without it give other rows.
    const { mean: _, ...uncentred } = variants[0]!;
    const plain = { ...uncentred, config: { ...uncentred.config, center: false } };
    const without = await ort.InferenceSession.create(adaptorOnnx(plain));
    const other = (await without.run({ embeddings: new ort.Tensor('float32', data, [n, d]) })).adapted!;
    expect(Math.abs((other.data as Float32Array)[0]! - applyAdaptor(variants[0]!, rows).data[0]!)).toBeGreaterThan(
      1e-3,
    );
    await without.release();

    const encoder = new MlpEncoder({ architecture: 'mlp', inputDim: 5, hidden: [6], embeddingDim: d }, createRandom(3));
    const input = Float32Array.from(randomArray(n * 5, 11));
    const base = tf.tidy(() => encoder.encode(tf.tensor2d(input, [n, 5]), false).dataSync() as Float32Array);
    const unit = { data: truncateAndNormalize(base, n, d, d), rows: n, dim: d };
    for (const w of variants) {
      const session = await ort.InferenceSession.create(withAdaptorOnnx(mlpOnnxModel(encoder, [2, 4, 8]), w));
      const result = await session.run({ input: new ort.Tensor('float32', input, [n, 5]) });
      expectClose(result.embedding!.data as Float32Array, applyAdaptor(w, unit).data, 1e-5);
      await session.release();
    }
    encoder.dispose();
  });

  it('saves the mean, loads it back bit for bit, and refuses a missing, non-finite or misshapen mean', async () => {
    const d = 6;
    const rows = { data: offsetRows(10, d, 3), rows: 10, dim: d };
    const weights = centredWeights(d, 7, Float32Array.from(fitPca(rows).directions));
    const dir = await mkdtemp(join(tmpdir(), 'mrl-adaptor-center-'));
    await saveAdaptor(dir, weights);
    const configPath = join(dir, 'adaptor.json');
    const weightsPath = join(dir, 'adaptor.safetensors');
    const config = JSON.parse(await readFile(configPath, 'utf8'));
    expect(config).toMatchObject({ center: true, rotation: 'pca', dim: d });
    const loaded = await loadAdaptor(dir);
    expect(loaded.config.center).toBe(true);
    expect(Array.from(loaded.mean!)).toEqual(Array.from(weights.mean!));
    expect(Array.from(applyAdaptor(loaded, rows).data)).toEqual(Array.from(applyAdaptor(weights, rows).data));

    const tensors = (mean: Float32Array | undefined, meanShape = [d]) =>
      new Map<string, { shape: number[]; data: Float32Array }>([
        ['w1', { shape: [d, 7], data: weights.w1 }],
        ['b1', { shape: [7], data: weights.b1 }],
        ['w2', { shape: [7, d], data: weights.w2 }],
        ['b2', { shape: [d], data: weights.b2 }],
        ['rotation', { shape: [d, d], data: weights.rotation! }],
        ...(mean === undefined ? [] : [['mean', { shape: meanShape, data: mean }] as const]),
      ]);
    const corrupt = Float32Array.from(weights.mean!);
    corrupt[3] = Number.NaN;
    await writeSafetensors(weightsPath, tensors(corrupt));
    await expect(loadAdaptor(dir)).rejects.toThrow(`${weightsPath}: tensor 'mean' value 3 is NaN.`);
    await writeSafetensors(weightsPath, tensors(undefined));
    await expect(loadAdaptor(dir)).rejects.toThrow(`${weightsPath} has no tensor 'mean'.`);
    await writeSafetensors(weightsPath, tensors(weights.mean!.subarray(0, 4), [4]));
    await expect(loadAdaptor(dir)).rejects.toThrow(
      `${weightsPath}: tensor 'mean' is F32 [4], ${configPath} needs F32 [6].`,
    );
    await writeFile(configPath, JSON.stringify({ ...config, center: 'yes' }));
    await expect(loadAdaptor(dir)).rejects.toThrow(`${configPath}: field 'center' must be true or false, got "yes".`);
    // Files written before the field existed load as uncentred.
    expect(validateAdaptorConfig({ dim: 4, hidden: 2, dims: [2, 4] }, 'a.json').center).toBeUndefined();
  });
});

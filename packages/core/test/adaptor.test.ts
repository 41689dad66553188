import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { MatryoshkaAdaptor, applyAdaptor } from '../src/adaptor/adaptor.js';
import { validateAdaptorConfig } from '../src/adaptor/config.js';
import { loadAdaptor, saveAdaptor } from '../src/adaptor/io.js';
import { adaptorOnnx, withAdaptorOnnx } from '../src/adaptor/onnx.js';
import { MlpEncoder } from '../src/mlp.js';
import { mlpOnnxModel, readOnnxMetadata } from '@mrl/kernels';
import { truncateAndNormalize } from '../src/prefix.js';
import { NeighbourDistributionObjective, RankingObjective, similarityTarget } from '../src/adaptor/losses.js';
import { AdaptorModel, adaptorBatches, fitAdaptor, nearestNeighbours } from '../src/adaptor/train.js';
import { applyPca, fitPca } from '../src/adaptor/pca.js';
import { checkRows } from '../src/adaptor/rows.js';
import { initBackend } from '@mrl/kernels';
import { MrlError } from '../src/errors.js';
import { createRandom } from '../src/rng.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';

interface Golden {
  n: number;
  p: number;
  d: number;
  hidden: number;
  dims: number[];
  dim_weights: number[];
  k: number;
  scale: number;
  loss_weights: { pairwise: number; topK: number; reconstruction: number; ranking: number };
  e: number[];
  queries: number[];
  documents: number[];
  w1: number[];
  b1: number[];
  w2: number[];
  b2: number[];
  adapted: number[];
  neighbours: number[];
  pairwise: number[];
  topk: number[];
  reconstruction: number;
  ranking: number[];
  total: number;
  grad_w1: number[];
  grad_b1: number[];
  grad_w2: number[];
  grad_b2: number[];
}

// Written by fixtures/golden_adaptor.py (PyTorch autograd, float64).
const golden = JSON.parse(readFileSync(new URL('./fixtures/golden_adaptor.json', import.meta.url), 'utf8')) as Golden;

function goldenAdaptor(): MatryoshkaAdaptor {
  const adaptor = new MatryoshkaAdaptor({ dim: golden.d, hidden: golden.hidden, dims: golden.dims }, createRandom(1));
  adaptor.assign({
    config: adaptor.config,
    w1: Float32Array.from(golden.w1),
    b1: Float32Array.from(golden.b1),
    w2: Float32Array.from(golden.w2),
    b2: Float32Array.from(golden.b2),
  });
  return adaptor;
}

describe.each(['cpu', 'wasm'] as const)('Matryoshka-Adaptor on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend, backend === 'wasm' ? { kernels: 'wasm' } : {});
  });

  it('reproduces its input exactly when freshly initialised', async () => {
    const d = 24;
    const adaptor = new MatryoshkaAdaptor({ dim: d, hidden: 48, dims: [4, 8, 24] }, createRandom(3));
    const data = randomArray(50 * d, 7).map((v) => v * 3);
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => adaptor.apply(tf.tensor2d(data, [50, d])).dataSync());
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(out)).toEqual(Array.from(data));
    const plain = applyAdaptor(await adaptor.weights(), { data, rows: 50, dim: d });
    expect(Array.from(plain.data)).toEqual(Array.from(data));
    // The hidden layer is not zero: the identity comes from the zero output layer alone.
    expect(Math.max(...(await adaptor.w1.data()).map(Math.abs))).toBeGreaterThan(0.1);
    adaptor.dispose();
  });

  it('with a PCA rotation, starts as the rotation itself, on tensors and on plain rows', async () => {
    const d = 6;
    const data = randomArray(40 * d, 9);
    const rows = { data, rows: 40, dim: d };
    const pca = fitPca(rows);
    const rotation = Float32Array.from(pca.directions);
    const adaptor = new MatryoshkaAdaptor(
      { dim: d, hidden: 5, dims: [2, 6], rotation: 'pca' },
      createRandom(2),
      rotation,
    );
    const expected = applyPca(pca, rows, { center: false }).data;
    const out = tf.tidy(() => adaptor.apply(tf.tensor2d(data, [40, d])).dataSync());
    expectClose(out, expected, 1e-5);
    const weights = await adaptor.weights();
    expectClose(applyAdaptor(weights, rows).data, expected, 1e-6);
    const dir = await mkdtemp(join(tmpdir(), 'mrl-adaptor-rot-'));
    await saveAdaptor(dir, weights);
    const loaded = await loadAdaptor(dir);
    expect(loaded.config.rotation).toBe('pca');
    expect(Array.from(loaded.rotation!)).toEqual(Array.from(rotation));
    expect(() => new MatryoshkaAdaptor({ dim: d, hidden: 5, dims: [2, 6], rotation: 'pca' }, createRandom(2))).toThrow(
      "an adaptor with rotation 'pca' needs a rotation matrix.",
    );
    adaptor.dispose();
  });

  it('computes f(e) as PyTorch does, with tensors and on plain rows', async () => {
    const adaptor = goldenAdaptor();
    const out = tf.tidy(() => adaptor.apply(tf.tensor2d(golden.e, [golden.n, golden.d])).dataSync());
    expectClose(out, golden.adapted, 1e-5);
    const plain = applyAdaptor(await adaptor.weights(), {
      data: Float32Array.from(golden.e),
      rows: golden.n,
      dim: golden.d,
    });
    expectClose(plain.data, golden.adapted, 1e-6);
    adaptor.dispose();
  });

  it('gives the losses and gradients of the PyTorch reference', () => {
    const adaptor = goldenAdaptor();
    const model = new AdaptorModel(adaptor, {
      dimWeights: golden.dim_weights,
      lossWeights: golden.loss_weights,
      k: golden.k,
      rankingScale: golden.scale,
    });
    const batch = {
      embeddings: tf.tensor2d(golden.e, [golden.n, golden.d]),
      queries: tf.tensor2d(golden.queries, [golden.p, golden.d]),
      documents: tf.tensor2d(golden.documents, [golden.p, golden.d]),
      size: golden.n,
      dispose: () => undefined,
    };
    const neighbours = tf.tidy(() => similarityTarget(batch.embeddings, golden.k).neighbours!.dataSync());
    expect(Array.from(neighbours)).toEqual(golden.neighbours);
    let parts: Record<string, number> = {};
    const vars = [adaptor.w1, adaptor.b1, adaptor.w2, adaptor.b2];
    const { value, grads } = tf.variableGrads(() => {
      const loss = model.loss(batch);
      parts = Object.fromEntries(Object.entries(loss.parts).map(([k, v]) => [k, v.dataSync()[0]!]));
      return loss.total;
    }, vars);
    expectClose([value.dataSync()[0]!], [golden.total], 1e-5);
    golden.dims.forEach((m, j) => {
      expectClose([parts[`pairwise/loss/${m}`]!], [golden.pairwise[j]!], 1e-4);
      expectClose([parts[`topk/loss/${m}`]!], [golden.topk[j]!], 1e-4);
      expectClose([parts[`ranking/loss/${m}`]!], [golden.ranking[j]!], 1e-5);
    });
    expectClose([parts.reconstruction!], [golden.reconstruction], 1e-5);
    expectClose(grads[adaptor.w1.name]!.dataSync(), golden.grad_w1, 1e-4);
    expectClose(grads[adaptor.b1.name]!.dataSync(), golden.grad_b1, 1e-4);
    expectClose(grads[adaptor.w2.name]!.dataSync(), golden.grad_w2, 1e-4);
    expectClose(grads[adaptor.b2.name]!.dataSync(), golden.grad_b2, 1e-4);
    tf.dispose([value, ...Object.values(grads), batch.embeddings, batch.queries, batch.documents]);
    adaptor.dispose();
  });
});

/** Row i's softmax over the other rows of `sim / t`, in float64 (sim [n][n]). */
function neighbourDistribution(sim: number[][], t: number): number[][] {
  return sim.map((row, i) => {
    const logits = row.map((v, j) => (j === i ? -Infinity : v / t));
    const top = Math.max(...logits);
    const z = logits.reduce((s, v) => s + Math.exp(v - top), 0);
    return logits.map((v) => Math.exp(v - top) / z);
  });
}

/** Cosine of every pair of the first m values of the rows of `flat` [n, d], in float64. */
function hostCosines(flat: ArrayLike<number>, n: number, d: number, m: number): number[][] {
  const rows = Array.from({ length: n }, (_, i) => {
    const v = Array.from({ length: m }, (_, j) => flat[i * d + j]!);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / norm);
  });
  return rows.map((a) => rows.map((b) => a.reduce((s, x, j) => s + x * b[j]!, 0)));
}

describe('NeighbourDistributionObjective', () => {
  it('is the mean over rows of KL(full-cosine softmax || prefix-cosine softmax), computed on the host', () => {
    const { n, d, dims } = golden;
    const t = 0.1;
    const objective = new NeighbourDistributionObjective(t);
    const adapted = tf.tensor2d(golden.adapted, [n, d]);
    const e = tf.tensor2d(golden.e, [n, d]);
    const target = similarityTarget(e);
    const losses = objective.prefixLosses(adapted, dims, target).map((l) => l.dataSync()[0]!);
    const p = neighbourDistribution(hostCosines(golden.e, n, d, d), t);
    const expected = dims.map((m) => {
      const q = neighbourDistribution(hostCosines(golden.adapted, n, d, m), t);
      let kl = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) if (j !== i) kl += p[i]![j]! * Math.log(p[i]![j]! / q[i]![j]!);
      return kl / n;
    });
    expectClose(losses, expected, 1e-4);
    expect(Math.min(...expected)).toBeGreaterThan(1e-4); // the prefixes really differ from the full vectors
    // The full-size prefix of the original vectors matches the target: zero loss.
    expectClose(
      objective.prefixLosses(e, [d], target).map((l) => l.dataSync()[0]!),
      [0],
      1e-5,
    );
    expect(() => new NeighbourDistributionObjective(0)).toThrow(
      'the neighbour temperature must be a finite number > 0, got 0.',
    );
    tf.dispose([adapted, e, target.similarity]);
  });
});

describe('Matryoshka-Adaptor gradient, numerically', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('matches central differences of the total loss in float64 arithmetic on the host', () => {
    // The loss again in plain float64 JavaScript, perturbed one weight at a time.
    const { n, p, d, hidden: h, dims, dim_weights: dw, k, scale, loss_weights: lw } = golden;
    const forward = (w2: number[], x: number[], rows: number): number[] => {
      const out: number[] = [];
      for (let r = 0; r < rows; r++) {
        const hid = golden.b1.map((b, j) => {
          let s = b;
          for (let i = 0; i < d; i++) s += x[r * d + i]! * golden.w1[i * h + j]!;
          return Math.max(0, s);
        });
        for (let i = 0; i < d; i++) {
          let s = golden.b2[i]!;
          for (let j = 0; j < h; j++) s += hid[j]! * w2[j * d + i]!;
          out.push(x[r * d + i]! + s);
        }
      }
      return out;
    };
    const cos = (x: number[], a: number, b: number, m: number): number => {
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let i = 0; i < m; i++) {
        ab += x[a * d + i]! * x[b * d + i]!;
        aa += x[a * d + i]! ** 2;
        bb += x[b * d + i]! ** 2;
      }
      return ab / Math.sqrt(aa * bb);
    };
    const total = (w2: number[]): number => {
      const y = forward(w2, golden.e, n);
      const fq = forward(w2, golden.queries, p);
      const fd = forward(w2, golden.documents, p);
      let sum = 0;
      for (let i = 0; i < n * d; i++) sum += lw.reconstruction * ((y[i]! - golden.e[i]!) ** 2 / (n * d));
      dims.forEach((m, j) => {
        let pair = 0;
        let top = 0;
        for (let a = 0; a < n; a++) {
          for (let b = 0; b < n; b++) {
            if (a === b) continue;
            const diff = Math.abs(cos(y, a, b, m) - cos(golden.e, a, b, d));
            pair += diff / (n * (n - 1));
            top += (golden.neighbours[a * n + b]! * diff) / (n * k);
          }
        }
        let rank = 0;
        for (let a = 0; a < p; a++) {
          const both = [...fq.slice(a * d, (a + 1) * d), ...fd];
          const logits = Array.from({ length: p }, (_, b) => scale * cos(both, 0, b + 1, m));
          const max = Math.max(...logits);
          rank += (Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0)) + max - logits[a]!) / p;
        }
        sum += dw[j]! * (lw.pairwise * pair + lw.topK * top + lw.ranking * rank);
      });
      return sum;
    };
    expect(total(golden.w2)).toBeCloseTo(golden.total, 9);
    const h0 = 1e-6;
    for (const index of [0, 7, 33, 95]) {
      const plus = [...golden.w2];
      const minus = [...golden.w2];
      plus[index]! += h0;
      minus[index]! -= h0;
      const numeric = (total(plus) - total(minus)) / (2 * h0);
      expect(Math.abs(numeric - golden.grad_w2[index]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(numeric)));
    }
  });
});

describe('Matryoshka-Adaptor validation and files', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('names the row and column of a non-finite value', () => {
    const data = new Float32Array(12);
    data[7] = Number.NaN;
    expectMrlError(
      () => checkRows({ data, rows: 3, dim: 4 }, 'corpus.npy'),
      'invalid-argument',
      'corpus.npy row 1 column 3 is NaN; embeddings must be finite.',
    );
    data[7] = Number.POSITIVE_INFINITY;
    expectMrlError(
      () => checkRows({ data, rows: 3, dim: 4 }, 'corpus.npy'),
      'invalid-argument',
      'corpus.npy row 1 column 3 is Infinity; embeddings must be finite.',
    );
  });

  it('refuses rows of the wrong size', async () => {
    const adaptor = new MatryoshkaAdaptor({ dim: 4, hidden: 8, dims: [2, 4] }, createRandom(0));
    const weights = await adaptor.weights();
    expectMrlError(
      () => applyAdaptor(weights, { data: new Float32Array(6), rows: 2, dim: 3 }, 'queries.npy'),
      'invalid-argument',
      'queries.npy have 3 dims but the adaptor maps 4-dim embeddings.',
    );
    expectMrlError(
      () => checkRows({ data: new Float32Array(7), rows: 2, dim: 4 }, 'x'),
      'invalid-argument',
      'x has 7 values, not 2 rows x 4 = 8.',
    );
    adaptor.dispose();
  });

  it('validates the training options', async () => {
    const corpus = { data: randomArray(40, 1), rows: 10, dim: 4 };
    await expect(fitAdaptor({ corpus, dims: [2, 3] })).rejects.toThrow(
      'the last nesting dim must be the embedding size 4, got 3.',
    );
    await expect(
      fitAdaptor({
        corpus,
        pairs: { queries: { data: randomArray(12, 2), rows: 3, dim: 4 }, documents: corpus },
      }),
    ).rejects.toThrow('the pairs have 3 queries but 10 documents.');
    expect(() => new RankingObjective(0)).toThrow('the ranking scale must be a finite number > 0, got 0.');
    const adaptor = new MatryoshkaAdaptor({ dim: 4, hidden: 8, dims: [2, 4] }, createRandom(0));
    expect(() => new AdaptorModel(adaptor, { lossWeights: { topK: -1 } })).toThrow(
      'the topK loss weight must be a finite number >= 0, got -1.',
    );
    expect(() => new AdaptorModel(adaptor, { k: 0 })).toThrow(
      'k (neighbours per row) must be a positive integer, got 0.',
    );
    adaptor.dispose();
  });

  it('finds exact nearest neighbours and brings them into the batches', async () => {
    const d = 5;
    const rows = 30;
    const data = randomArray(rows * d, 21);
    const k = 3;
    const knn = await nearestNeighbours({ data, rows, dim: d }, k, 7);
    const cos = (a: number, b: number): number => {
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let j = 0; j < d; j++) {
        ab += data[a * d + j]! * data[b * d + j]!;
        aa += data[a * d + j]! ** 2;
        bb += data[b * d + j]! ** 2;
      }
      return ab / Math.sqrt(aa * bb);
    };
    for (let i = 0; i < rows; i++) {
      const expected = Array.from({ length: rows }, (_, j) => j)
        .filter((j) => j !== i)
        .sort((a, b) => cos(i, b) - cos(i, a))
        .slice(0, k);
      expect(Array.from(knn.subarray(i * k, (i + 1) * k))).toEqual(expected);
    }
    const source = adaptorBatches({ data, rows, dim: d }, undefined, { indices: knn, k });
    const batch = await source.batch(Int32Array.from([0, 1]));
    const expectedRows = [...new Set([0, ...knn.subarray(0, k), 1, ...knn.subarray(k, 2 * k)])];
    expect(batch.embeddings.shape).toEqual([expectedRows.length, d]);
    expectClose(
      batch.embeddings.dataSync(),
      expectedRows.flatMap((r) => Array.from(data.subarray(r * d, (r + 1) * d))),
      1e-7,
    );
    batch.dispose();
    await expect(nearestNeighbours({ data, rows, dim: d }, rows)).rejects.toThrow(
      `neighbours per row must be an integer in [1, ${rows - 1}], got ${rows}.`,
    );
  });

  it('exports to ONNX: ONNX Runtime gives what applyAdaptor gives, with and without a rotation', async () => {
    const adaptor = goldenAdaptor();
    const weights = await adaptor.weights();
    adaptor.dispose();
    const rows = { data: Float32Array.from(golden.e), rows: golden.n, dim: golden.d };
    const pca = fitPca(rows);
    const rotated = {
      ...weights,
      config: { ...weights.config, rotation: 'pca' as const },
      rotation: Float32Array.from(pca.directions),
    };
    for (const w of [weights, rotated]) {
      const session = await ort.InferenceSession.create(adaptorOnnx(w));
      const result = await session.run({ embeddings: new ort.Tensor('float32', rows.data, [rows.rows, rows.dim]) });
      const out = result.adapted!;
      expect(out.dims).toEqual([rows.rows, rows.dim]);
      expectClose(out.data as Float32Array, applyAdaptor(w, rows).data, 1e-5);
      await session.release();
    }
    // The rotation is really in the graph: the two exports differ.
    expect(Array.from(applyAdaptor(rotated, rows).data.subarray(0, 4))).not.toEqual(
      Array.from(applyAdaptor(weights, rows).data.subarray(0, 4)),
    );
  });

  it('appends to a model graph: ONNX Runtime gives the model, renormalised, then the adaptor', async () => {
    const adaptor = goldenAdaptor();
    const weights = await adaptor.weights();
    adaptor.dispose();
    const d = golden.d;
    const encoder = new MlpEncoder({ architecture: 'mlp', inputDim: 5, hidden: [6], embeddingDim: d }, createRandom(3));
    const pca = fitPca({ data: Float32Array.from(golden.e), rows: golden.n, dim: d });
    const rotated = {
      ...weights,
      config: { ...weights.config, rotation: 'pca' as const },
      rotation: Float32Array.from(pca.directions),
    };
    const n = 7;
    const input = Float32Array.from(randomArray(n * 5, 11));
    const base = tf.tidy(() => encoder.encode(tf.tensor2d(input, [n, 5]), false).dataSync() as Float32Array);
    for (const w of [weights, rotated]) {
      const bytes = withAdaptorOnnx(mlpOnnxModel(encoder, [2, 4, 8]), w);
      const { metadata } = readOnnxMetadata(bytes);
      expect(JSON.parse(metadata['mrl.adaptor']!)).toEqual(w.config);
      expect(JSON.parse(metadata['mrl.nesting_dims']!)).toEqual([2, 4, 8]);
      const session = await ort.InferenceSession.create(bytes);
      expect(session.outputNames).toEqual(['embedding', 'unadapted_embedding']);
      const result = await session.run({ input: new ort.Tensor('float32', input, [n, 5]) });
      const expected = applyAdaptor(w, { data: truncateAndNormalize(base, n, d, d), rows: n, dim: d }).data;
      expect(result.embedding!.dims).toEqual([n, d]);
      expectClose(result.embedding!.data as Float32Array, expected, 1e-5);
      expectClose(result.unadapted_embedding!.data as Float32Array, base, 1e-5);
      await session.release();
    }
    const wide = new MlpEncoder({ architecture: 'mlp', inputDim: 5, hidden: [6], embeddingDim: 16 }, createRandom(3));
    expect(() => withAdaptorOnnx(mlpOnnxModel(wide, [8, 16]), weights)).toThrow(
      "the model's output 'embedding' is [batch, 16] but the adaptor maps 8-dim embeddings.",
    );
    expect(() => withAdaptorOnnx(mlpOnnxModel(encoder, [8]), weights, 'pooled')).toThrow(
      "the ONNX model has no output 'pooled' (outputs: embedding).",
    );
    encoder.dispose();
    wide.dispose();
  });

  it('saves as safetensors + JSON and loads the same weights', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mrl-adaptor-'));
    const adaptor = goldenAdaptor();
    const weights = await adaptor.weights();
    await saveAdaptor(dir, weights, { source: 'golden' });
    const config = JSON.parse(await readFile(join(dir, 'adaptor.json'), 'utf8'));
    expect(config).toMatchObject({ format: 'mrl-matryoshka-adaptor', dim: 8, hidden: 12, dims: [2, 4, 8] });
    const loaded = await loadAdaptor(dir);
    expect(Array.from(loaded.w1)).toEqual(Array.from(weights.w1));
    expect(Array.from(loaded.b2)).toEqual(Array.from(weights.b2));
    const rows = { data: Float32Array.from(golden.e), rows: golden.n, dim: golden.d };
    expect(Array.from(applyAdaptor(loaded, rows).data)).toEqual(Array.from(applyAdaptor(weights, rows).data));
    await writeFile(join(dir, 'adaptor.json'), JSON.stringify({ ...config, dims: [2, 4, 6] }));
    await expect(loadAdaptor(dir)).rejects.toThrow(
      `${join(dir, 'adaptor.json')}: the last nesting dim must be the embedding size 8, got 6.`,
    );
    await writeFile(join(dir, 'adaptor.json'), JSON.stringify({ ...config, hidden: 13 }));
    await expect(loadAdaptor(dir)).rejects.toThrow(
      `${join(dir, 'adaptor.safetensors')}: tensor 'w1' is F32 [8, 12], ${join(dir, 'adaptor.json')} needs F32 [8, 13].`,
    );
    await expect(loadAdaptor(join(dir, 'nowhere'))).rejects.toSatisfy(
      (e) => MrlError.is(e) && e.kind === 'missing-file',
    );
    expect(() => validateAdaptorConfig({ dim: 8, hidden: 0, dims: [8] }, 'a.json')).toThrow(
      "a.json: field 'hidden' must be a positive integer, got 0.",
    );
    adaptor.dispose();
  });
});

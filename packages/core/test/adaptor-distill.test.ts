import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@mrl/kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import { MatryoshkaAdaptor } from '../src/adaptor/adaptor.js';
import { DistillationObjective } from '../src/adaptor/losses.js';
import { AdaptorModel, type AdaptorBatch } from '../src/adaptor/train.js';
import { createRandom } from '../src/rng.js';
import { expectClose, randomArray } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';
import { hostLogSoftmax } from './helpers/ranking.js';

/** Mean over queries of KL(p_i || q_m,i), p from prefix `teacher`, q from prefix m. */
function hostDistill(
  q: Float32Array,
  doc: Float32Array,
  n: number,
  cols: number,
  d: number,
  m: number,
  teacher: number,
  logit: number,
  mask?: Float32Array,
): number {
  const logP = hostLogSoftmax(q, doc, n, cols, d, teacher, logit, mask);
  const logQ = hostLogSoftmax(q, doc, n, cols, d, m, logit, mask);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cols; j++) {
      const lp = logP[i]![j]!;
      if (lp !== Number.NEGATIVE_INFINITY) total += Math.exp(lp) * (lp - logQ[i]![j]!);
    }
  }
  return total / n;
}

describe('Matryoshka-Adaptor self-distillation term', () => {
  beforeAll(async () => {
    await initBackend('wasm', { kernels: 'wasm' });
  });

  const n = 5;
  const extra = 3;
  const d = 8;

  it('is the mean KL of the full prefix’s document softmax to each smaller prefix’s, as a host computation', () => {
    const q = randomArray(n * d, 31);
    const doc = randomArray((n + extra) * d, 32);
    const mask = new Float32Array(n * (n + extra));
    mask[0 * (n + extra) + 2] = 1;
    mask[3 * (n + extra) + 6] = 1;
    const dims = [2, 4, 8];
    for (const [scale, temperature, withMask] of [
      [20, 1, false],
      [20, 2, true],
      [5, 0.5, false],
    ] as const) {
      const objective = new DistillationObjective(scale, temperature);
      const got = tf.tidy(() => {
        const qt = tf.tensor2d(q, [n, d]);
        const target = {
          documents: tf.tensor2d(doc, [n + extra, d]),
          ...(withMask ? { otherPositives: tf.tensor2d(mask, [n, n + extra]) } : {}),
        };
        const teacherLogProbabilities = objective.teacher(qt, target, d);
        return tf.stack(objective.prefixLosses(qt, dims, { ...target, teacherLogProbabilities }));
      });
      const expected = dims.map((m) =>
        hostDistill(q, doc, n, n + extra, d, m, d, scale / temperature, withMask ? mask : undefined),
      );
      expectClose(got.dataSync(), expected, 1e-4);
      got.dispose();
      // The teacher's own prefix is its own target; smaller prefixes differ from it.
      expect(expected[2]!).toBe(0);
      expect(expected[0]!).toBeGreaterThan(1e-3);
    }
  });

  it('sends no gradient into the teacher: dims beyond the student prefix get exactly zero', () => {
    const q = randomArray(n * d, 41);
    const doc = randomArray((n + extra) * d, 42);
    const m = 3;
    const objective = new DistillationObjective(20, 1);
    const documents = tf.tensor2d(doc, [n + extra, d]);
    const queries = tf.tensor2d(q, [n, d]);
    // Through the model's path: the teacher built from the same tensor the student slices.
    const selfTaught = tf.grad((x: tf.Tensor) => {
      const x2 = x as tf.Tensor2D;
      const teacher = objective.teacher(x2, { documents }, d);
      return objective.prefixLosses(x2, [m], { documents, teacherLogProbabilities: teacher })[0]!;
    });
    // The same loss with the teacher a constant computed before any tape.
    const constantTeacher = objective.teacher(queries, { documents }, d);
    const fixed = tf.grad(
      (x: tf.Tensor) =>
        objective.prefixLosses(x as tf.Tensor2D, [m], { documents, teacherLogProbabilities: constantTeacher })[0]!,
    );
    const g = selfTaught(queries);
    const reference = fixed(queries);
    const gv = g.dataSync();
    // Columns m.. of a query feed only the teacher's full-dim cosine.
    for (let i = 0; i < n; i++) for (let j = m; j < d; j++) expect(gv[i * d + j]).toBe(0);
    expectClose(gv, reference.dataSync(), 1e-6);
    // The student side does learn: its columns get a gradient.
    expect(
      Math.max(...Array.from({ length: n * m }, (_, t) => Math.abs(gv[Math.floor(t / m) * d + (t % m)]!))),
    ).toBeGreaterThan(1e-4);
    // Numerically, with the teacher held fixed: the loss moves as the student's gradient says.
    const step = 1e-2;
    const direction = randomArray(n * d, 43);
    for (let i = 0; i < n; i++) for (let j = m; j < d; j++) direction[i * d + j] = 0;
    const lossAt = (t: number): number =>
      tf.tidy(
        () =>
          objective
            .prefixLosses(tf.add(queries, tf.mul(tf.tensor2d(direction, [n, d]), t)) as tf.Tensor2D, [m], {
              documents,
              teacherLogProbabilities: constantTeacher,
            })[0]!
            .dataSync()[0]!,
      );
    const numeric = (lossAt(step) - lossAt(-step)) / (2 * step);
    const analytic = Array.from(gv).reduce((s, v, t) => s + v * direction[t]!, 0);
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-2 * Math.max(1, Math.abs(analytic)));
    tf.dispose([documents, queries, constantTeacher, g, reference]);
  });

  it('adds w * sum_m w_m distill(m) over the dims below the largest; weight 0 leaves the loss as it was', () => {
    const dims = [2, 4, 8];
    const dimWeights = [3, 2, 1];
    const adaptor = new MatryoshkaAdaptor({ dim: d, hidden: 6, dims }, createRandom(3));
    // Away from the identity, so that the adapted prefixes are not the raw vectors' prefixes.
    adaptor.w2.assign(tf.tensor2d(randomArray(6 * d, 44), [6, d]));
    const tensors = {
      embeddings: tf.tensor2d(randomArray(6 * d, 45), [6, d]),
      queries: tf.tensor2d(randomArray(n * d, 46), [n, d]),
      documents: tf.tensor2d(randomArray(n * d, 47), [n, d]),
      negatives: tf.tensor2d(randomArray(n * d, 48), [n, d]),
    };
    const batch: AdaptorBatch = { ...tensors, size: 6, dispose: () => tf.dispose(Object.values(tensors)) };
    const values = (options: ConstructorParameters<typeof AdaptorModel>[1]): Record<string, number> =>
      tf.tidy(() => {
        const { total, parts } = new AdaptorModel(adaptor, options).loss(batch);
        return Object.fromEntries([
          ['total', total.dataSync()[0]!],
          ...Object.entries(parts).map(([k, v]) => [k, v.dataSync()[0]!]),
        ]);
      });
    const old = values({ dimWeights });
    const off = values({ dimWeights, lossWeights: { distill: 0 } });
    expect(off).toEqual(old);
    expect(Object.keys(old).some((k) => k.startsWith('distill/'))).toBe(false);
    const on = values({ dimWeights, lossWeights: { distill: 4 }, distillTemperature: 2 });
    expect(Object.keys(on).filter((k) => k.startsWith('distill/'))).toEqual(['distill/loss/2', 'distill/loss/4']);
    const distilled = 3 * on['distill/loss/2']! + 2 * on['distill/loss/4']!;
    expectClose([on.total!], [old.total! + 4 * distilled], 1e-5);
    // The parts are the objective's on the adapted batch, teacher at 8 dims, logits 20 / 2.
    const [aq, ak] = tf.tidy(() => [
      adaptor.apply(batch.queries!).dataSync() as Float32Array,
      adaptor.apply(tf.concat([batch.documents!, batch.negatives!]) as tf.Tensor2D).dataSync() as Float32Array,
    ]);
    for (const m of [2, 4])
      expectClose([on[`distill/loss/${m}`]!], [hostDistill(aq!, ak!, n, 2 * n, d, m, 8, 10)], 1e-4);
    batch.dispose();
    adaptor.dispose();
  });

  it('refuses a bad temperature, a teacher of the wrong shape, and distillation without a smaller dim', () => {
    expectMrlError(
      () => new DistillationObjective(20, 0),
      'invalid-argument',
      'the distillation temperature must be a finite number > 0, got 0.',
    );
    expectMrlError(
      () =>
        tf.tidy(() =>
          new DistillationObjective().prefixLosses(tf.ones([3, 4]), [2], {
            documents: tf.ones([3, 4]),
            teacherLogProbabilities: tf.zeros([3, 2]),
          }),
        ),
      'invalid-argument',
      'the distillation teacher is [3, 2] but the batch has 3 queries and 3 documents.',
    );
    const adaptor = new MatryoshkaAdaptor({ dim: 4, hidden: 3, dims: [4] }, createRandom(1));
    expectMrlError(
      () => new AdaptorModel(adaptor, { lossWeights: { distill: 1 } }),
      'invalid-argument',
      'the distillation term needs a nesting dim below the largest (its teacher), but the dims are [4].',
    );
    adaptor.dispose();
  });
});

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADAMW_UPDATE, registerWasmTrainingKernels, SGD_UPDATE } from '@mrl/kernels';
import { MrlError } from '../src/errors.js';
import { AdamWOptimizer } from '../src/optim/adamw.js';
import { createOptimizer } from '../src/optim/index.js';
import type { Optimizer, OptimizerConfig } from '../src/optim/optimizer.js';
import { learningRateAt, validateSchedule } from '../src/optim/schedule.js';
import { SgdOptimizer } from '../src/optim/sgd.js';
import { expectClose } from './helpers/close.js';
import { expectMrlError } from './helpers/errors.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

// Float32-exact starting values and per-step gradients, so the reference sees what the tensors hold.
const P0 = Array.from(new Float32Array([0.5, -1.25, 2.0, 0.75, -0.3, 1.1]));
const GRADS = [
  [0.1, -0.2, 0.3, -0.4, 0.5, -0.6],
  [-0.05, 0.25, 0.15, -0.35, 0.45, 0.05],
  [0.3, 0.1, -0.2, 0.2, -0.1, 0.4],
].map((g) => Array.from(new Float32Array(g)));
const LRS = [0.1, 0.05, 0.02];

/** torch.optim.SGD.step (dampening 0), in Float64. */
function referenceSgd(momentum: number, nesterov: boolean, weightDecay: number, lrScale = 1): number[] {
  const p = [...P0];
  let buf: number[] | null = null;
  GRADS.forEach((grad, t) => {
    const d = grad.map((g, i) => g + weightDecay * p[i]!);
    let update = d;
    if (momentum !== 0) {
      buf = buf === null ? [...d] : buf.map((b, i) => momentum * b + d[i]!);
      const b = buf;
      update = nesterov ? d.map((x, i) => x + momentum * b[i]!) : b;
    }
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - LRS[t]! * lrScale * update[i]!;
  });
  return p;
}

/** torch.optim.AdamW.step (amsgrad off), in Float64. */
function referenceAdamW(beta1: number, beta2: number, eps: number, weightDecay: number, lrScale = 1): number[] {
  const p = [...P0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  GRADS.forEach((grad, index) => {
    const t = index + 1;
    const lr = LRS[index]! * lrScale;
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i]! * (1 - lr * weightDecay);
      m[i] = beta1 * m[i]! + (1 - beta1) * grad[i]!;
      v[i] = beta2 * v[i]! + (1 - beta2) * grad[i]! * grad[i]!;
      const stepSize = lr / (1 - beta1 ** t);
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - beta2 ** t) + eps;
      p[i] = p[i]! - (stepSize * m[i]!) / denom;
    }
  });
  return p;
}

/** Runs three updates of `optimizer` on a [2, 3] variable and returns its values. */
function runOptimizer(optimizer: Optimizer, lrScales?: ReadonlyMap<string, number>): number[] {
  const p = tf.variable(tf.tensor2d(P0, [2, 3]), true);
  const variables = new Map([['p', p]]);
  GRADS.forEach((g, t) => {
    const grad = tf.tensor2d(g, [2, 3]);
    optimizer.apply(variables, new Map([['p', grad]]), LRS[t]!, lrScales);
    grad.dispose();
  });
  const out = Array.from(p.dataSync());
  p.dispose();
  optimizer.dispose();
  return out;
}

/**
 * On cpu the optimisers run tensor ops; on wasm, after registerWasmTrainingKernels, one SIMD
 * kernel per tensor (SGD from its second step, once the momentum buffer exists).
 */
const BACKENDS = ['cpu', 'wasm'] as const;

async function useBackend(name: (typeof BACKENDS)[number]): Promise<void> {
  await tf.setBackend(name);
  await tf.ready();
  if (name === 'wasm') registerWasmTrainingKernels();
  expect(tf.getKernel(ADAMW_UPDATE, name) !== undefined).toBe(name === 'wasm');
  expect(tf.getKernel(SGD_UPDATE, name) !== undefined).toBe(name === 'wasm');
}

describe.each(BACKENDS)('SgdOptimizer matches PyTorch (%s)', (backend) => {
  beforeAll(() => useBackend(backend));

  const cases: [string, { momentum: number; nesterov: boolean; weightDecay: number }][] = [
    ['plain SGD', { momentum: 0, nesterov: false, weightDecay: 0 }],
    ['momentum', { momentum: 0.9, nesterov: false, weightDecay: 0 }],
    ['nesterov', { momentum: 0.9, nesterov: true, weightDecay: 0 }],
    ['momentum with weight decay', { momentum: 0.8, nesterov: false, weightDecay: 0.1 }],
    ['nesterov with weight decay', { momentum: 0.5, nesterov: true, weightDecay: 0.05 }],
  ];
  for (const [label, c] of cases) {
    it(`three steps of ${label}`, () => {
      const actual = runOptimizer(new SgdOptimizer({ type: 'sgd', lr: 1, ...c }));
      const expected = referenceSgd(c.momentum, c.nesterov, c.weightDecay);
      expectClose(actual, expected, 1e-5);
      // The parameters moved, so a no-op optimiser cannot pass.
      expect(Math.max(...expected.map((e, i) => Math.abs(e - P0[i]!)))).toBeGreaterThan(0.01);
    });
  }

  it('defaults to momentum 0.9 without weight decay', () => {
    const sgd = new SgdOptimizer({ type: 'sgd', lr: 1 });
    expect([sgd.momentum, sgd.nesterov, sgd.weightDecay]).toEqual([0.9, false, 0]);
    expectClose(runOptimizer(sgd), referenceSgd(0.9, false, 0), 1e-5);
  });

  it('round-trips its momentum buffers through getState/setState', () => {
    const p = tf.variable(tf.tensor1d([1, 2]), true);
    const variables = new Map([['p', p]]);
    const a = new SgdOptimizer({ type: 'sgd', lr: 1, momentum: 0.9 });
    const g = tf.tensor1d([0.5, -0.5]);
    a.apply(variables, new Map([['p', g]]), 0.1);
    const state = a.getState();
    expect([...state.keys()]).toEqual(['p/momentum']);
    const b = new SgdOptimizer({ type: 'sgd', lr: 1, momentum: 0.9 });
    b.setState(state);
    const p2 = tf.variable(tf.clone(p), true);
    a.apply(variables, new Map([['p', g]]), 0.1);
    b.apply(new Map([['p', p2]]), new Map([['p', g]]), 0.1);
    expect(Array.from(p2.dataSync())).toEqual(Array.from(p.dataSync()));
    tf.dispose([p, p2, g]);
    a.dispose();
    b.dispose();
  });
});

describe.each(BACKENDS)('AdamWOptimizer matches PyTorch (%s)', (backend) => {
  beforeAll(() => useBackend(backend));

  const cases: [string, { beta1: number; beta2: number; epsilon: number; weightDecay: number }][] = [
    ['defaults', { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01 }],
    ['strong weight decay', { beta1: 0.8, beta2: 0.95, epsilon: 1e-6, weightDecay: 0.5 }],
    ['no weight decay', { beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0 }],
  ];
  for (const [label, c] of cases) {
    it(`three steps with ${label}`, () => {
      const actual = runOptimizer(new AdamWOptimizer({ type: 'adamw', lr: 1, ...c }));
      const expected = referenceAdamW(c.beta1, c.beta2, c.epsilon, c.weightDecay);
      expectClose(actual, expected, 1e-5);
      expect(Math.max(...expected.map((e, i) => Math.abs(e - P0[i]!)))).toBeGreaterThan(0.01);
    });
  }

  it('uses the PyTorch defaults when none are given', () => {
    const adam = new AdamWOptimizer({ type: 'adamw', lr: 1 });
    expect([adam.beta1, adam.beta2, adam.epsilon, adam.weightDecay]).toEqual([0.9, 0.999, 1e-8, 0.01]);
    expectClose(runOptimizer(adam), referenceAdamW(0.9, 0.999, 1e-8, 0.01), 1e-5);
  });

  it('round-trips its moments and step count through getState/setState', () => {
    const a = new AdamWOptimizer({ type: 'adamw', lr: 1 });
    const b = new AdamWOptimizer({ type: 'adamw', lr: 1 });
    const pa = tf.variable(tf.tensor1d([1, -2, 3]), true);
    const pb = tf.variable(tf.tensor1d([1, -2, 3]), true);
    const g1 = tf.tensor1d([0.1, 0.2, -0.3]);
    const g2 = tf.tensor1d([-0.4, 0.1, 0.2]);
    a.apply(new Map([['p', pa]]), new Map([['p', g1]]), 0.1);
    a.apply(new Map([['p', pa]]), new Map([['p', g2]]), 0.1);
    const state = a.getState();
    expect([...state.keys()].sort()).toEqual(['adamw/step', 'p/m', 'p/v']);
    expect(state.get('adamw/step')!.dataSync()[0]).toBe(2);
    b.setState(state);
    pb.assign(pa);
    a.apply(new Map([['p', pa]]), new Map([['p', g1]]), 0.1);
    b.apply(new Map([['p', pb]]), new Map([['p', g1]]), 0.1);
    expect(Array.from(pb.dataSync())).toEqual(Array.from(pa.dataSync()));
    state.get('adamw/step')!.dispose();
    tf.dispose([pa, pb, g1, g2]);
    a.dispose();
    b.dispose();
  });
});

describe.each(BACKENDS)('lrScales (layer-wise learning rates) (%s)', (backend) => {
  beforeAll(() => useBackend(backend));

  it('SGD and AdamW update a listed variable at lr times its scale, as PyTorch with that lr', () => {
    const scales = new Map([['p', 0.25]]);
    expectClose(
      runOptimizer(new SgdOptimizer({ type: 'sgd', lr: 1, momentum: 0.9, weightDecay: 0.1 }), scales),
      referenceSgd(0.9, false, 0.1, 0.25),
      1e-5,
    );
    expectClose(
      runOptimizer(new AdamWOptimizer({ type: 'adamw', lr: 1, weightDecay: 0.01 }), scales),
      referenceAdamW(0.9, 0.999, 1e-8, 0.01, 0.25),
      1e-5,
    );
    // An unlisted variable keeps the full rate.
    expectClose(
      runOptimizer(new AdamWOptimizer({ type: 'adamw', lr: 1 }), new Map([['other', 0.25]])),
      referenceAdamW(0.9, 0.999, 1e-8, 0.01),
      1e-5,
    );
  });
});

describe('optimizer config validation', () => {
  it('rejects an SGD momentum outside [0, 1)', () => {
    expectMrlError(
      () => new SgdOptimizer({ type: 'sgd', lr: 0.1, momentum: 1 }),
      'invalid-config',
      'optimizer.momentum must be in [0, 1), got 1.',
    );
  });

  it('rejects a negative SGD weightDecay', () => {
    expectMrlError(
      () => new SgdOptimizer({ type: 'sgd', lr: 0.1, weightDecay: -0.1 }),
      'invalid-config',
      'optimizer.weightDecay must be >= 0, got -0.1.',
    );
  });

  it('rejects an AdamW beta1 outside [0, 1)', () => {
    expectMrlError(
      () => new AdamWOptimizer({ type: 'adamw', lr: 0.1, beta1: 1 }),
      'invalid-config',
      'optimizer.beta1 must be in [0, 1), got 1.',
    );
  });

  it('rejects an AdamW beta2 outside [0, 1)', () => {
    expectMrlError(
      () => new AdamWOptimizer({ type: 'adamw', lr: 0.1, beta2: -0.5 }),
      'invalid-config',
      'optimizer.beta2 must be in [0, 1), got -0.5.',
    );
  });

  it('rejects an AdamW epsilon that is not > 0', () => {
    expectMrlError(
      () => new AdamWOptimizer({ type: 'adamw', lr: 0.1, epsilon: 0 }),
      'invalid-config',
      'optimizer.epsilon must be > 0, got 0.',
    );
  });

  it('rejects a negative AdamW weightDecay', () => {
    expectMrlError(
      () => new AdamWOptimizer({ type: 'adamw', lr: 0.1, weightDecay: -1 }),
      'invalid-config',
      'optimizer.weightDecay must be >= 0, got -1.',
    );
  });

  it('createOptimizer builds the named optimiser', () => {
    const sgd = createOptimizer({ type: 'sgd', lr: 0.1 });
    const adam = createOptimizer({ type: 'adamw', lr: 0.1 });
    expect(sgd).toBeInstanceOf(SgdOptimizer);
    expect(adam).toBeInstanceOf(AdamWOptimizer);
  });

  it('createOptimizer rejects an unknown type', () => {
    let thrown: unknown;
    try {
      createOptimizer({ type: 'rmsprop', lr: 0.1 } as unknown as OptimizerConfig);
    } catch (e) {
      thrown = e;
    }
    expect(MrlError.is(thrown)).toBe(true);
    expect((thrown as MrlError).kind).toBe('invalid-config');
    expect((thrown as MrlError).message).toBe("optimizer.type 'rmsprop' is not known.");
    expect((thrown as MrlError).fix).toBe("Use 'sgd' or 'adamw'.");
  });
});

describe('learningRateAt', () => {
  const config = { lr: 0.1, warmupSteps: 5, minLr: 0.001 };
  const total = 30;

  it('warms up linearly and peaks at the end of the warm-up', () => {
    const warm = Array.from({ length: 5 }, (_, s) => learningRateAt(s, total, config));
    expectClose(warm, [0.02, 0.04, 0.06, 0.08, 0.1], 1e-12);
    expect(learningRateAt(5, total, config)).toBeCloseTo(0.1, 12);
    for (let s = 0; s < total; s++) expect(learningRateAt(s, total, config)).toBeLessThanOrEqual(0.1 + 1e-15);
  });

  it('follows the cosine between the peak and minLr', () => {
    const s = 5 + 25 / 2; // halfway through the decay
    expect(learningRateAt(s, total, config)).toBeCloseTo((0.1 + 0.001) / 2, 12);
    expect(learningRateAt(10, total, config)).toBeCloseTo(0.001 + 0.5 * 0.099 * (1 + Math.cos((Math.PI * 5) / 25)), 12);
  });

  it('reaches minLr at totalSteps and stays there', () => {
    expect(learningRateAt(total, total, config)).toBeCloseTo(0.001, 12);
    expect(learningRateAt(total + 10, total, config)).toBeCloseTo(0.001, 12);
    // The last step the trainer runs (totalSteps - 1) is one cosine tick above minLr.
    const last = learningRateAt(total - 1, total, config);
    expect(last).toBeGreaterThan(0.001);
    expect(last).toBeLessThan(0.001 + 0.099 * 0.01);
  });

  it('decays monotonically after the warm-up', () => {
    for (let s = 5; s < total; s++)
      expect(learningRateAt(s + 1, total, config)).toBeLessThanOrEqual(learningRateAt(s, total, config));
    expect(learningRateAt(5, total, config)).toBeGreaterThan(learningRateAt(total - 1, total, config));
  });

  it('starts at the peak and decays to 0 without warm-up or minLr', () => {
    expect(learningRateAt(0, 10, { lr: 0.5 })).toBe(0.5);
    expect(learningRateAt(10, 10, { lr: 0.5 })).toBeCloseTo(0, 12);
  });

  it('warms up over all steps when warmupSteps equals totalSteps', () => {
    expect(learningRateAt(9, 10, { lr: 0.5, warmupSteps: 10 })).toBeCloseTo(0.5, 12);
    expect(learningRateAt(0, 10, { lr: 0.5, warmupSteps: 10 })).toBeCloseTo(0.05, 12);
  });
});

describe('validateSchedule', () => {
  it('rejects an lr that is not finite', () => {
    expectMrlError(
      () => validateSchedule({ lr: Number.POSITIVE_INFINITY }, 10),
      'invalid-config',
      'lr must be a finite number > 0, got Infinity.',
    );
  });

  it('rejects fractional warmupSteps', () => {
    expectMrlError(
      () => validateSchedule({ lr: 0.1, warmupSteps: 1.5 }, 10),
      'invalid-config',
      'warmupSteps must be an integer in [0, 10] (the total steps), got 1.5.',
    );
  });

  it('rejects a negative minLr', () => {
    expectMrlError(
      () => validateSchedule({ lr: 0.1, minLr: -0.01 }, 10),
      'invalid-config',
      'minLr must be in [0, lr = 0.1], got -0.01.',
    );
  });

  it('accepts a valid schedule', () => {
    expect(() => validateSchedule({ lr: 0.1, warmupSteps: 10, minLr: 0.1 }, 10)).not.toThrow();
  });
});

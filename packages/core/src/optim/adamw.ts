import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import { ADAMW_UPDATE, type AdamWUpdateAttrs } from '@mrl/kernels';
import type { Optimizer, OptimizerConfig } from './optimizer.js';

/**
 * AdamW (Loshchilov & Hutter, 2019) as in PyTorch: Adam moments with bias correction, and weight
 * decay applied to the weights directly (`p -= lr * wd * p`), not through the gradient.
 */
export class AdamWOptimizer implements Optimizer {
  readonly #m = new Map<string, tf.Variable>();
  readonly #v = new Map<string, tf.Variable>();
  #step = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;

  constructor(readonly config: Extract<OptimizerConfig, { type: 'adamw' }>) {
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.epsilon = config.epsilon ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0.01;
    for (const [field, value] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const) {
      if (!(value >= 0 && value < 1)) {
        throw new MrlError('invalid-config', `optimizer.${field} must be in [0, 1), got ${value}.`);
      }
    }
    if (!(this.epsilon > 0))
      throw new MrlError('invalid-config', `optimizer.epsilon must be > 0, got ${this.epsilon}.`);
    if (!(this.weightDecay >= 0)) {
      throw new MrlError('invalid-config', `optimizer.weightDecay must be >= 0, got ${this.weightDecay}.`);
    }
  }

  apply(
    variables: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor>,
    lr: number,
    lrScales?: ReadonlyMap<string, number>,
  ): void {
    this.#step += 1;
    const c1 = 1 - this.beta1 ** this.#step;
    const c2 = 1 - this.beta2 ** this.#step;
    // One pass per tensor where the backend has our kernel for it (wasm); tensor ops elsewhere.
    const fused = tf.getKernel(ADAMW_UPDATE, tf.getBackend()) !== undefined;
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const p = variables.get(name)!;
        const rate = lr * (lrScales?.get(name) ?? 1);
        let m = this.#m.get(name);
        let v = this.#v.get(name);
        if (m === undefined || v === undefined) {
          m = tf.variable(tf.zerosLike(p), false);
          v = tf.variable(tf.zerosLike(p), false);
          this.#m.set(name, m);
          this.#v.set(name, v);
        }
        if (fused) {
          const attrs: AdamWUpdateAttrs = {
            lr: rate,
            beta1: this.beta1,
            beta2: this.beta2,
            epsilon: this.epsilon,
            weightDecay: this.weightDecay,
            correction1: c1,
            correction2: c2,
          };
          const [p1, m1, v1] = tf
            .engine()
            .runKernel(ADAMW_UPDATE, { param: p, grad: g, m, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
          p.assign(p1!);
          m.assign(m1!);
          v.assign(v1!);
          continue;
        }
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const denom = tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon);
        const step = tf.div(tf.div(m, c1), denom);
        const decayed = this.weightDecay > 0 ? tf.mul(p, 1 - rate * this.weightDecay) : p;
        p.assign(tf.sub(decayed, tf.mul(step, rate)));
      }
    });
  }

  getState(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    out.set('adamw/step', tf.scalar(this.#step, 'float32'));
    for (const [name, m] of this.#m) out.set(`${name}/m`, m);
    for (const [name, v] of this.#v) out.set(`${name}/v`, v);
    return out;
  }

  setState(state: Map<string, tf.Tensor>): void {
    this.dispose();
    for (const [key, value] of state) {
      if (key === 'adamw/step') {
        this.#step = value.dataSync()[0]!;
      } else if (key.endsWith('/m')) {
        this.#m.set(
          key.slice(0, -2),
          tf.tidy(() => tf.variable(tf.clone(value), false)),
        );
      } else if (key.endsWith('/v')) {
        this.#v.set(
          key.slice(0, -2),
          tf.tidy(() => tf.variable(tf.clone(value), false)),
        );
      }
    }
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
    this.#step = 0;
  }
}

import * as tf from '@tensorflow/tfjs';
import { MrlError } from '../errors.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '@mrl/kernels';
import type { Optimizer, OptimizerConfig } from './optimizer.js';

/**
 * SGD with momentum as PyTorch defines it: `buf = mu * buf + (g + wd * p)`, `p -= lr * buf`
 * (Nesterov: `p -= lr * (g + mu * buf)`). Weight decay is L2 added to the gradient.
 */
export class SgdOptimizer implements Optimizer {
  readonly #buffers = new Map<string, tf.Variable>();
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(readonly config: Extract<OptimizerConfig, { type: 'sgd' }>) {
    this.momentum = config.momentum ?? 0.9;
    this.weightDecay = config.weightDecay ?? 0;
    this.nesterov = config.nesterov ?? false;
    if (!(this.momentum >= 0 && this.momentum < 1)) {
      throw new MrlError('invalid-config', `optimizer.momentum must be in [0, 1), got ${config.momentum}.`);
    }
    if (!(this.weightDecay >= 0)) {
      throw new MrlError('invalid-config', `optimizer.weightDecay must be >= 0, got ${config.weightDecay}.`);
    }
  }

  apply(
    variables: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor>,
    lr: number,
    lrScales?: ReadonlyMap<string, number>,
  ): void {
    // One pass per tensor where the backend has our kernel for it (wasm); tensor ops elsewhere.
    const fused = this.momentum > 0 && tf.getKernel(SGD_UPDATE, tf.getBackend()) !== undefined;
    tf.tidy(() => {
      for (const [name, grad] of grads) {
        const p = variables.get(name)!;
        const rate = lr * (lrScales?.get(name) ?? 1);
        const existing = this.#buffers.get(name);
        if (fused && existing !== undefined) {
          const attrs: SgdUpdateAttrs = {
            lr: rate,
            momentum: this.momentum,
            weightDecay: this.weightDecay,
            nesterov: this.nesterov,
          };
          const [p1, b1] = tf
            .engine()
            .runKernel(
              SGD_UPDATE,
              { param: p, grad, buf: existing },
              attrs as unknown as tf.NamedAttrMap,
            ) as tf.Tensor[];
          p.assign(p1!);
          existing.assign(b1!);
          continue;
        }
        const g = this.weightDecay > 0 ? tf.add(grad, tf.mul(p, this.weightDecay)) : grad;
        if (this.momentum === 0) {
          p.assign(tf.sub(p, tf.mul(g, rate)));
          continue;
        }
        let buf = this.#buffers.get(name);
        if (buf === undefined) {
          buf = tf.variable(tf.clone(g), false);
          this.#buffers.set(name, buf);
        } else {
          buf.assign(tf.add(tf.mul(buf, this.momentum), g));
        }
        const update = this.nesterov ? tf.add(g, tf.mul(buf, this.momentum)) : buf;
        p.assign(tf.sub(p, tf.mul(update, rate)));
      }
    });
  }

  getState(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, buf] of this.#buffers) out.set(`${name}/momentum`, buf);
    return out;
  }

  setState(state: Map<string, tf.Tensor>): void {
    this.dispose();
    for (const [key, value] of state) {
      const name = key.replace(/\/momentum$/, '');
      // The tidy frees the clone; the variable keeps its data.
      this.#buffers.set(
        name,
        tf.tidy(() => tf.variable(tf.clone(value), false)),
      );
    }
  }

  dispose(): void {
    for (const buf of this.#buffers.values()) buf.dispose();
    this.#buffers.clear();
  }
}

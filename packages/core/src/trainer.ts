import * as tf from '@tensorflow/tfjs';
import {
  listCheckpoints,
  loadCheckpoint,
  newestGoodCheckpoint,
  saveCheckpoint,
  setCheckpointsAside,
} from './checkpoint.js';
import { MrlError } from './errors.js';
import type { TrainModel } from './model.js';
import { clipByGlobalNorm } from './optim/clip.js';
import { createOptimizer } from './optim/index.js';
import type { Optimizer, OptimizerConfig } from './optim/optimizer.js';
import { learningRateAt, validateSchedule } from './optim/schedule.js';
import { createRandom, permutation } from './rng.js';

/** Builds training batches from example indices; may be async (image decoding). */
export interface BatchSource<Batch> {
  readonly size: number;
  batch(indices: Int32Array): Batch | Promise<Batch>;
}

/** A batch the trainer can free and count. */
export interface DisposableBatch {
  size: number;
  dispose(): void;
}

export interface TrainerOptions {
  /** Passes over the data (used when `steps` is absent). */
  epochs?: number;
  /** Total optimiser steps; overrides `epochs`. */
  steps?: number;
  batchSize: number;
  seed: number;
  optimizer: OptimizerConfig;
  /** Linear warm-up steps before the cosine decay. */
  warmupSteps?: number;
  /** Learning rate at the end of the cosine decay (default 0). */
  minLr?: number;
  /**
   * Per-variable multipliers of the learning rate, keyed by the model's variable names (those of
   * `model.variables()`); unlisted variables use 1. Layer-wise decay for fine-tuning a pretrained
   * encoder: see text's `bertLayerDecay`.
   */
  lrScales?: ReadonlyMap<string, number>;
  /** Clip the global gradient norm to this value. */
  clipNorm?: number;
  checkpoint?: {
    dir: string;
    /** Write a checkpoint every this many steps (and at the end). */
    every: number;
    /** Checkpoints kept on disk (default 3). */
    keep?: number;
    /** Strings stored with each checkpoint, e.g. the run config. */
    metadata?: Record<string, string>;
  };
  /** Continue from the newest checkpoint in `checkpoint.dir`, if any. */
  resume?: boolean;
  /**
   * Continue from the checkpoint of this step in `checkpoint.dir` (it must exist); newer
   * checkpoints are renamed `*.superseded` so they never mix with the continued run's.
   */
  fromCheckpoint?: number;
  /** Stops the run after the current step, writing a checkpoint first. */
  signal?: AbortSignal;
  onEvent?: (event: TrainEvent) => void;
}

export type TrainEvent =
  | { type: 'start'; totalSteps: number; startStep: number; resumedFrom?: string; setAside?: string[] }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      epoch: number;
      loss: number;
      parts: Record<string, number>;
      lr: number;
      gradNorm?: number;
      examplesPerSecond: number;
      elapsedMs: number;
      etaMs: number;
    }
  | { type: 'checkpoint'; step: number; path: string }
  | { type: 'stopped'; step: number; reason: 'signal' }
  | { type: 'done'; step: number; elapsedMs: number };

export interface FitResult {
  steps: number;
  finalLoss: number;
  stopped: boolean;
  /** Mean loss parts over the last epoch's steps. */
  lastParts: Record<string, number>;
}

/**
 * Mini-batch training loop: seeded shuffling per epoch, warm-up + cosine learning rate, optional
 * gradient clipping, atomic checkpoints with optimiser state, and exact resume. A non-finite loss
 * (or non-finite weights at a checkpoint) stops the run before the update and rolls the model back
 * to the newest checkpoint whose weights and loss were finite; the error says which.
 */
export class Trainer<Batch extends DisposableBatch> {
  readonly optimizer: Optimizer;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;

  constructor(
    readonly model: TrainModel<Batch>,
    readonly data: BatchSource<Batch>,
    readonly options: TrainerOptions,
  ) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new MrlError('invalid-config', `batchSize must be a positive integer, got ${batchSize}.`);
    }
    if (data.size < 1) throw new MrlError('invalid-argument', 'the training data is empty.');
    this.stepsPerEpoch = Math.ceil(data.size / batchSize);
    if (options.steps !== undefined) {
      if (!Number.isInteger(options.steps) || options.steps < 1) {
        throw new MrlError('invalid-config', `steps must be a positive integer, got ${options.steps}.`);
      }
      this.totalSteps = options.steps;
    } else {
      const epochs = options.epochs ?? 1;
      if (!(epochs > 0)) throw new MrlError('invalid-config', `epochs must be > 0, got ${epochs}.`);
      this.totalSteps = Math.max(1, Math.round(epochs * this.stepsPerEpoch));
    }
    validateSchedule(
      { lr: options.optimizer.lr, warmupSteps: options.warmupSteps ?? 0, minLr: options.minLr ?? 0 },
      this.totalSteps,
    );
    if (options.clipNorm !== undefined && !(options.clipNorm > 0)) {
      throw new MrlError('invalid-config', `clipNorm must be > 0, got ${options.clipNorm}.`);
    }
    if (
      options.checkpoint !== undefined &&
      !(Number.isInteger(options.checkpoint.every) && options.checkpoint.every >= 1)
    ) {
      throw new MrlError(
        'invalid-config',
        `checkpoint.every must be a positive integer, got ${options.checkpoint.every}.`,
      );
    }
    for (const [name, scale] of options.lrScales ?? []) {
      if (!(scale >= 0 && Number.isFinite(scale)))
        throw new MrlError('invalid-config', `lrScales: '${name}' has scale ${scale}; scales must be finite and >= 0.`);
    }
    this.optimizer = createOptimizer(options.optimizer);
  }

  /** Example indices of a step, from the seeded permutation of its epoch. */
  indicesForStep(step: number): Int32Array {
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const within = step % this.stepsPerEpoch;
    const order = this.#epochOrder(epoch);
    const start = within * this.options.batchSize;
    return order.subarray(start, Math.min(order.length, start + this.options.batchSize));
  }

  #cachedEpoch = -1;
  #cachedOrder: Int32Array = new Int32Array(0);
  #epochOrder(epoch: number): Int32Array {
    if (epoch !== this.#cachedEpoch) {
      this.#cachedOrder = permutation(this.data.size, createRandom(this.options.seed, 1, epoch));
      this.#cachedEpoch = epoch;
    }
    return this.#cachedOrder;
  }

  async fit(): Promise<FitResult> {
    const { options } = this;
    const variables = this.model.variables();
    const names = [...variables.keys()].filter((n) => variables.get(n)!.trainable);
    const varList = names.map((n) => variables.get(n)!);
    let step = 0;
    let resumedFrom: string | undefined;
    let setAside: string[] = [];
    if (options.checkpoint !== undefined && (options.resume === true || options.fromCheckpoint !== undefined)) {
      const all = await listCheckpoints(options.checkpoint.dir);
      let chosen = all.at(-1);
      if (options.fromCheckpoint !== undefined) {
        chosen = all.find((c) => c.step === options.fromCheckpoint);
        if (chosen === undefined) {
          throw new MrlError(
            'missing-file',
            `there is no checkpoint of step ${options.fromCheckpoint} in ${options.checkpoint.dir}.`,
            all.length === 0
              ? 'That folder holds no checkpoints; train without --from-checkpoint.'
              : `Steps with a checkpoint: ${all.map((c) => c.step).join(', ')}.`,
          );
        }
        const from = chosen.step;
        setAside = await setCheckpointsAside(
          all.filter((c) => c.step > from),
          'superseded',
        );
      }
      if (chosen !== undefined) {
        const loaded = await loadCheckpoint(chosen.path, variables, this.optimizer);
        step = loaded.step;
        resumedFrom = chosen.path;
      }
    }
    const startStep = step;
    options.onEvent?.({
      type: 'start',
      totalSteps: this.totalSteps,
      startStep: step,
      ...(resumedFrom === undefined ? {} : { resumedFrom }),
      ...(setAside.length === 0 ? {} : { setAside }),
    });
    const started = performance.now();
    let examplesSeen = 0;
    let finalLoss = Number.NaN;
    let lastParts: Record<string, number> = {};
    let lastCheckpointStep = step;
    const writeCheckpoint = async (at: number): Promise<void> => {
      if (options.checkpoint === undefined || at === lastCheckpointStep) return;
      let path: string;
      try {
        path = await saveCheckpoint({
          dir: options.checkpoint.dir,
          step: at,
          variables,
          optimizer: this.optimizer,
          ...(Number.isFinite(finalLoss) ? { loss: finalLoss } : {}),
          ...(options.checkpoint.metadata === undefined ? {} : { metadata: options.checkpoint.metadata }),
          ...(options.checkpoint.keep === undefined ? {} : { keep: options.checkpoint.keep }),
        });
      } catch (error) {
        if (MrlError.is(error) && error.kind === 'non-finite-value')
          throw await this.#rollBack(error.message.replace(/; no checkpoint was written\.$/, ''), variables);
        throw error;
      }
      lastCheckpointStep = at;
      options.onEvent?.({ type: 'checkpoint', step: at, path });
    };

    let pending: Promise<Batch> | null =
      step < this.totalSteps ? Promise.resolve(this.data.batch(this.indicesForStep(step))) : null;
    while (step < this.totalSteps && pending !== null) {
      const batch = await pending;
      // Ask for the next batch before computing this step, so asynchronous decoding overlaps it.
      pending = step + 1 < this.totalSteps ? Promise.resolve(this.data.batch(this.indicesForStep(step + 1))) : null;
      const lr = learningRateAt(step, this.totalSteps, {
        lr: options.optimizer.lr,
        warmupSteps: options.warmupSteps ?? 0,
        minLr: options.minLr ?? 0,
      });
      const random = createRandom(options.seed, 2, step);
      let partNames: string[] = [];
      let partsTensor: tf.Tensor | null = null;
      const { value, grads } = tf.variableGrads(() => {
        const { total, parts } = this.model.loss(batch, random);
        partNames = Object.keys(parts);
        partsTensor = tf.keep(tf.stack(Object.values(parts)));
        return total;
      }, varList);
      // Asynchronous reads: GPU backends in Node have no synchronous read-back.
      const loss = (await value.data())[0]!;
      const partValues = partsTensor === null ? new Float32Array(0) : await (partsTensor as tf.Tensor).data();
      value.dispose();
      (partsTensor as tf.Tensor | null)?.dispose();
      batch.dispose();
      if (!Number.isFinite(loss)) {
        tf.dispose(grads);
        if (pending !== null) (await pending).dispose();
        throw await this.#rollBack(
          `the loss became ${loss} at step ${step + 1}; training stopped before updating the weights`,
          variables,
        );
      }
      const gradMap = new Map<string, tf.Tensor>();
      names.forEach((n, i) => {
        const g = grads[varList[i]!.name];
        if (g !== undefined) gradMap.set(n, g);
      });
      let gradNorm: number | undefined;
      if (options.clipNorm !== undefined) {
        const clipped = await clipByGlobalNorm(gradMap, options.clipNorm);
        gradNorm = clipped.norm;
        tf.dispose(grads);
        this.optimizer.apply(variables, clipped.grads, lr, options.lrScales);
        tf.dispose([...clipped.grads.values()]);
      } else {
        this.optimizer.apply(variables, gradMap, lr, options.lrScales);
        tf.dispose(grads);
      }
      step += 1;
      examplesSeen += batch.size;
      finalLoss = loss;
      const parts: Record<string, number> = {};
      partNames.forEach((n, i) => {
        parts[n] = partValues[i]!;
      });
      lastParts = parts;
      const elapsedMs = performance.now() - started;
      const stepsDone = step - startStep;
      options.onEvent?.({
        type: 'step',
        step,
        totalSteps: this.totalSteps,
        epoch: Math.floor((step - 1) / this.stepsPerEpoch),
        loss,
        parts,
        lr,
        ...(gradNorm === undefined ? {} : { gradNorm }),
        examplesPerSecond: (examplesSeen * 1000) / Math.max(1, elapsedMs),
        elapsedMs,
        etaMs: (elapsedMs / Math.max(1, stepsDone)) * (this.totalSteps - step),
      });
      if (options.checkpoint !== undefined && step % options.checkpoint.every === 0) await writeCheckpoint(step);
      // Yield to the event loop once per step so signals (Ctrl-C) and I/O are handled promptly.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (options.signal?.aborted === true && step < this.totalSteps) {
        if (pending !== null) (await pending).dispose();
        await writeCheckpoint(step);
        options.onEvent?.({ type: 'stopped', step, reason: 'signal' });
        return { steps: step, finalLoss, stopped: true, lastParts };
      }
    }
    await writeCheckpoint(step);
    options.onEvent?.({ type: 'done', step, elapsedMs: performance.now() - started });
    return { steps: step, finalLoss, stopped: false, lastParts };
  }

  /**
   * After divergence: restores the newest checkpoint whose weights and loss are finite (weights
   * and optimiser state), renames the unusable newer ones `*.diverged`, and returns the error
   * that says which checkpoint the model now holds.
   */
  async #rollBack(what: string, variables: ReturnType<TrainModel<Batch>['variables']>): Promise<MrlError> {
    const fix =
      'Lower the learning rate, add --clip-norm, or check the input data for NaN/Inf values; then continue with --resume.';
    const dir = this.options.checkpoint?.dir;
    if (dir === undefined) return new MrlError('non-finite-loss', `${what}.`, fix);
    const { good, bad } = await newestGoodCheckpoint(dir);
    const aside = await setCheckpointsAside(bad, 'diverged');
    const renamed =
      aside.length === 0 ? '' : ` ${aside.length} newer checkpoint(s) that were not usable were renamed *.diverged.`;
    if (good === undefined) {
      return new MrlError(
        'non-finite-loss',
        `${what}. No checkpoint with finite weights and loss exists in ${dir} to roll back to.${renamed}`,
        'Lower the learning rate, add --clip-norm, or check the input data for NaN/Inf values; then train again.',
      );
    }
    await loadCheckpoint(good.path, variables, this.optimizer);
    const loss = good.loss === undefined ? '' : ` (loss ${good.loss.toPrecision(5)})`;
    return new MrlError(
      'non-finite-loss',
      `${what}. Rolled back to the last good checkpoint, step ${good.step}${loss}: ${good.path}.${renamed}`,
      fix,
    );
  }
}

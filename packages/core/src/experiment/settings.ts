import { join } from 'node:path';
import type { OptimizerConfig } from '../optim/optimizer.js';
import type { RunContext } from '../run.js';
import type { TrainerOptions } from '../trainer.js';

/**
 * The training settings every modality's `fit` reads, by one name each: the CLI maps each flag
 * (`--epochs`, `--steps`, `--batch-size`, `--lr`, `--weight-decay`, `--warmup-steps`,
 * `--clip-norm`, `--checkpoint-every`, `--train-limit`, `--test-limit`) to the field of the same
 * name for vision, text and align alike. {@link trainerOptions} turns them into the Trainer's options.
 */
export interface TrainSettings {
  /** Passes over the training data (used when `steps` is absent). */
  epochs?: number;
  /** Total optimiser steps; overrides `epochs`. */
  steps?: number;
  batchSize?: number;
  /** The whole optimiser config; when given, `lr` and `weightDecay` are not read. */
  optimizer?: OptimizerConfig;
  /** AdamW learning rate. */
  lr?: number;
  /** AdamW decoupled weight decay. */
  weightDecay?: number;
  warmupSteps?: number;
  clipNorm?: number;
  /** Checkpoint every this many steps (and at the end). */
  checkpointEvery?: number;
  /** Use only the first N training examples. */
  trainLimit?: number;
  /** Use only the first N test examples. */
  testLimit?: number;
}

/** What a modality uses for a setting the caller left out. */
export interface TrainDefaults {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay?: number;
  warmupSteps?: number;
  clipNorm?: number;
  checkpointEvery: number;
}

/**
 * The Trainer's options for one model of a run (`label`: `mrl`, `ff-16`, ...): the settings over
 * the modality's defaults, the run's seed, resume and stop signal, and a checkpoint folder per
 * model (default `<runDir>/checkpoints/<label>`), so that resuming a run reloads each model from
 * its own final checkpoint.
 *
 * @example
 * ```ts
 * const trainer = new Trainer(model, data, trainerOptions({ epochs: 2 }, { epochs: 1, batchSize: 32, lr: 1e-3, checkpointEvery: 500 }, context, 'mrl'));
 * ```
 */
export function trainerOptions(
  settings: TrainSettings,
  defaults: TrainDefaults,
  context: RunContext,
  label: string,
  checkpointDir: string = join(context.runDir, 'checkpoints', label),
): TrainerOptions {
  const weightDecay = settings.weightDecay ?? defaults.weightDecay;
  const warmupSteps = settings.warmupSteps ?? defaults.warmupSteps;
  const clipNorm = settings.clipNorm ?? defaults.clipNorm;
  return {
    ...(settings.steps === undefined ? { epochs: settings.epochs ?? defaults.epochs } : { steps: settings.steps }),
    batchSize: settings.batchSize ?? defaults.batchSize,
    seed: context.seed,
    optimizer: settings.optimizer ?? {
      type: 'adamw',
      lr: settings.lr ?? defaults.lr,
      ...(weightDecay === undefined ? {} : { weightDecay }),
    },
    ...(warmupSteps === undefined ? {} : { warmupSteps }),
    ...(clipNorm === undefined ? {} : { clipNorm }),
    checkpoint: {
      dir: checkpointDir,
      every: settings.checkpointEvery ?? defaults.checkpointEvery,
      ...(context.keepCheckpoints === undefined ? {} : { keep: context.keepCheckpoints }),
    },
    resume: context.resume,
    ...(context.fromCheckpoint === undefined ? {} : { fromCheckpoint: context.fromCheckpoint }),
    ...(context.signal === undefined ? {} : { signal: context.signal }),
    onEvent: (event) => context.onEvent?.(event, label),
  };
}

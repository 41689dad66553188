import { MrlError } from '../errors.js';

export interface ScheduleConfig {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up from 0 to `lr` (default 0). */
  warmupSteps?: number;
  /** Final learning rate of the cosine decay (default 0). */
  minLr?: number;
}

/**
 * Linear warm-up then cosine decay to `minLr` at `totalSteps` (Loshchilov & Hutter's SGDR
 * without restarts). `step` counts from 0.
 */
export function learningRateAt(step: number, totalSteps: number, config: ScheduleConfig): number {
  const warmup = config.warmupSteps ?? 0;
  const minLr = config.minLr ?? 0;
  if (warmup > 0 && step < warmup) return (config.lr * (step + 1)) / warmup;
  const span = Math.max(1, totalSteps - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  return minLr + 0.5 * (config.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

export function validateSchedule(config: ScheduleConfig, totalSteps: number): void {
  if (!(config.lr > 0) || !Number.isFinite(config.lr)) {
    throw new MrlError('invalid-config', `lr must be a finite number > 0, got ${config.lr}.`);
  }
  const warmup = config.warmupSteps ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > totalSteps) {
    throw new MrlError(
      'invalid-config',
      `warmupSteps must be an integer in [0, ${totalSteps}] (the total steps), got ${warmup}.`,
    );
  }
  const minLr = config.minLr ?? 0;
  if (!(minLr >= 0 && minLr <= config.lr)) {
    throw new MrlError('invalid-config', `minLr must be in [0, lr = ${config.lr}], got ${minLr}.`);
  }
}

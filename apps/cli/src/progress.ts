import type { TrainEvent } from '@mrl/core';

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export interface ProgressReporter {
  /** The models the run will train, in order (from `RunContext.onPlan`). */
  plan(labels: readonly string[]): void;
  draw(event: TrainEvent, label: string): void;
}

/**
 * Estimated time left for the whole run: the current model's ETA, plus, for each model still to
 * come, the time a model of this run has taken so far per step times its planned steps (models
 * of one run are assumed to train as many steps; the FF models are smaller, so this errs high).
 */
export function runEta(
  plan: readonly string[],
  label: string,
  event: { step: number; totalSteps: number; elapsedMs: number; etaMs: number },
): { index: number; etaMs: number } | undefined {
  const index = plan.indexOf(label);
  if (index < 0 || event.step <= 0) return undefined;
  const perModel = event.elapsedMs + event.etaMs;
  return { index, etaMs: event.etaMs + (plan.length - 1 - index) * perModel };
}

/**
 * Draws training progress: a bar redrawn in place on a terminal, a line every 10% otherwise,
 * or one JSON object per event with `json`. With a plan of several models, each line says which
 * model of how many is training and the ETA of the whole run.
 */
export function createProgressReporter(stream: NodeJS.WriteStream, format: 'text' | 'json'): ProgressReporter {
  const tty = stream.isTTY === true;
  let lastDecile = -1;
  let plan: readonly string[] = [];
  return {
    plan(labels) {
      plan = [...labels];
      if (format === 'json') stream.write(`${JSON.stringify({ type: 'plan', models: plan })}\n`);
      else if (plan.length > 1) stream.write(`models to train: ${plan.join(', ')}\n`);
    },
    draw(event, label) {
      if (format === 'json') {
        const eta = event.type === 'step' ? runEta(plan, label, event) : undefined;
        stream.write(
          `${JSON.stringify({ model: label, ...event, ...(eta === undefined ? {} : { runEtaMs: eta.etaMs }) })}\n`,
        );
        return;
      }
      if (event.type === 'start') {
        lastDecile = -1;
        if (event.resumedFrom !== undefined)
          stream.write(`[${label}] resuming from ${event.resumedFrom} (step ${event.startStep})\n`);
        if (event.setAside !== undefined)
          stream.write(
            `[${label}] ${event.setAside.length} newer checkpoint(s) renamed *.superseded, out of the resume order\n`,
          );
        return;
      }
      if (event.type === 'step') {
        const fraction = event.step / event.totalSteps;
        const width = 20;
        const filled = Math.round(fraction * width);
        const parts = Object.entries(event.parts)
          .map(([name, value]) => `${name.replace('loss/', '')}:${value.toFixed(3)}`)
          .join(' ');
        const eta = plan.length > 1 ? runEta(plan, label, event) : undefined;
        const who = eta === undefined ? label : `${label} ${eta.index + 1}/${plan.length}`;
        const time =
          eta === undefined
            ? `ETA ${formatDuration(event.etaMs)}`
            : `ETA ${formatDuration(event.etaMs)}, run ${formatDuration(eta.etaMs)}`;
        const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
        const head = `[${who}] ${bar} ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(4)}`;
        const tail = `${Math.round(event.examplesPerSecond)} ex/s ${time}`;
        if (tty) {
          // One line that fits the terminal: the per-dim losses go when it is narrow.
          // A pseudo-terminal without a size (script, CI) reports 0 columns.
          const columns = stream.columns !== undefined && stream.columns > 0 ? stream.columns : 100;
          const full = `${head} (${parts}) ${tail}`;
          const line = full.length < columns ? full : `${head} ${tail}`;
          stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, columns - 1))}`);
          if (event.step === event.totalSteps) stream.write('\n');
        } else {
          const decile = Math.floor(fraction * 10);
          if (decile !== lastDecile) {
            lastDecile = decile;
            stream.write(`${head} ${tail}\n  ${parts}\n`);
          }
        }
        return;
      }
      if (event.type === 'stopped')
        stream.write(
          `${tty ? '\n' : ''}[${label}] stopped at step ${event.step}; checkpoint written, continue with --resume\n`,
        );
    },
  };
}

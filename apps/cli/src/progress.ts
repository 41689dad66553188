import type { TrainEvent } from '@mrl/core';

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * Draws training progress: a bar redrawn in place on a terminal, a line every 10% otherwise,
 * or one JSON object per event with `json`.
 */
export function createProgressReporter(
  stream: NodeJS.WriteStream,
  format: 'text' | 'json',
): (event: TrainEvent, label: string) => void {
  const tty = stream.isTTY === true;
  let lastDecile = -1;
  return (event, label) => {
    if (format === 'json') {
      stream.write(`${JSON.stringify({ model: label, ...event })}\n`);
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
      const width = 24;
      const filled = Math.round(fraction * width);
      const parts = Object.entries(event.parts)
        .map(([name, value]) => `${name.replace('loss/', '')}:${value.toFixed(3)}`)
        .join(' ');
      const line = `[${label}] ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(4)} (${parts}) ${Math.round(event.examplesPerSecond)} ex/s ETA ${formatDuration(event.etaMs)}`;
      if (tty) {
        stream.write(`\r\x1b[2K${line}`);
        if (event.step === event.totalSteps) stream.write('\n');
      } else {
        const decile = Math.floor(fraction * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          stream.write(`${line}\n`);
        }
      }
      return;
    }
    if (event.type === 'stopped')
      stream.write(
        `${tty ? '\n' : ''}[${label}] stopped at step ${event.step}; checkpoint written, continue with --resume\n`,
      );
  };
}

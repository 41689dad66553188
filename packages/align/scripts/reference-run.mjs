// The README's reference run: node packages/align/scripts/reference-run.mjs [runDir]
// (after `pnpm run build`); the same as `mrl-cli fit --modality align` with the defaults.
import { fitAlign } from '../dist/index.js';

const started = Date.now();
const stamp = () => `[${((Date.now() - started) / 1000).toFixed(0)}s]`;
const report = await fitAlign(
  {},
  {
    runDir: process.argv[2] ?? 'runs/align-reference',
    seed: 0,
    resume: false,
    log: (line) => console.log(`${stamp()} ${line}`),
    onEvent: (event, label) => {
      if (event.type === 'step' && event.step % 20 === 0)
        console.log(`${stamp()} ${label} step ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(3)}`);
    },
  },
);
console.log(`${report.title}\n${report.table}`);

// Runs fitText from the built package until the CLI lands:
//   node packages/text/scripts/fit-text.mjs '{"task":"mlm","vocabSize":4096,"steps":400}' runs/text-mlm [--resume]
// --resume continues from the run folder's newest checkpoint (only evaluates when training is done).
import { fitText } from '../dist/index.js';

const options = JSON.parse(process.argv[2] ?? '{"task":"mlm"}');
const runDir = process.argv[3] ?? `runs/text-${options.task}`;
let last = 0;
const report = await fitText(options, {
  runDir,
  seed: 0,
  resume: process.argv.includes('--resume'),
  log: (line) => console.log(line),
  onEvent: (event) => {
    if (
      event.type === 'step' &&
      (event.step === 1 || event.step === event.totalSteps || performance.now() - last > 10_000)
    ) {
      last = performance.now();
      const dims = Object.keys(event.parts).filter((k) => k.startsWith('loss/'));
      const ends =
        dims.length > 1
          ? ` (${[dims[0], dims.at(-1)].map((k) => `${k} ${event.parts[k].toFixed(3)}`).join(', ')})`
          : '';
      console.log(
        `step ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(3)}${ends} ${(event.elapsedMs / event.step).toFixed(0)} ms/step eta ${(event.etaMs / 1000).toFixed(0)} s`,
      );
    }
  },
});
console.log(`\n${report.title}\n${report.table}`);

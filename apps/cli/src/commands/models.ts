import { formatTable } from '@mrl/core';
import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, MODELS_FLAGS } from '../flags.js';
import { buildRegistry } from '../registry.js';

export const modelsCommand = defineMrlCommand({
  name: 'models',
  description:
    'List the encoders and objectives registered in the DI container: core, the modality packages and the --plugin modules.',
  examples: [
    'mrl-cli models',
    'mrl-cli models --plugin ./examples/custom-encoder/my-encoder.js',
    'mrl-cli models --format json',
  ],
  flags: { ...MODELS_FLAGS, ...COMMON_FLAGS },
  async run(options) {
    const registry = await buildRegistry(options.plugin);
    const encoders = registry.encoders.map((e) => ({
      name: e.name,
      modality: e.modality,
      dim: e.defaults.embeddingDim,
      description: e.description,
    }));
    const objectives = registry.objectives.map((o) => ({
      name: String(o.name),
      modality: o.modality ?? '',
      description: o.description ?? '',
    }));
    if (options.format === 'json') {
      process.stdout.write(`${JSON.stringify({ modules: registry.modules, encoders, objectives }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`modules: ${registry.modules.join(', ')}\n\nencoders\n`);
    process.stdout.write(
      `${formatTable(encoders, [
        { header: 'name', value: (e) => e.name },
        { header: 'modality', value: (e) => e.modality },
        { header: 'default d', value: (e) => String(e.dim) },
        { header: 'description', value: (e) => e.description },
      ])}\n`,
    );
    process.stdout.write('\nobjectives\n');
    process.stdout.write(
      objectives.length === 0
        ? '(none registered; classification (--head separate|shared) is built in)\n'
        : `${formatTable(objectives, [
            { header: 'name', value: (o) => o.name },
            { header: 'modality', value: (o) => o.modality },
            { header: 'description', value: (o) => o.description },
          ])}\n`,
    );
  },
});

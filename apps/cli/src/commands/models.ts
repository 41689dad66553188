import { defineMrlCommand } from '../command.js';
import { COMMON_FLAGS, MODELS_FLAGS } from '../flags.js';
import { helpWidth, wrap } from '../help.js';
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
    // A list, not a table: descriptions wrap under their name within the help width.
    const width = helpWidth();
    const list = (items: { title: string; description: string }[]): string =>
      items
        .map((i) => [`  ${i.title}`, ...wrap(i.description, width - 6).map((l) => `      ${l}`)].join('\n'))
        .join('\n');
    process.stdout.write(`${wrap(`modules: ${registry.modules.join(', ')}`, width).join('\n')}\n\nencoders\n`);
    process.stdout.write(
      `${list(encoders.map((e) => ({ title: `${e.name} (${e.modality}, default d=${e.dim})`, description: e.description })))}\n`,
    );
    process.stdout.write('\nobjectives\n');
    process.stdout.write(
      objectives.length === 0
        ? '  (none registered; classification (--head separate|shared) is built in)\n'
        : `${list(objectives.map((o) => ({ title: `${o.name}${o.modality === '' ? '' : ` (${o.modality})`}`, description: o.description })))}\n`,
    );
  },
});

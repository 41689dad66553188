import { defineCommand, type CommandDef } from 'citty';
import { cittyArgs, resolveFlags, type FlagSet, type Resolved } from './flags.js';
import type { CommandHelp } from './help.js';

/** A citty command with what `mrl-cli <command> --help` shows. */
export type MrlCommand = CommandDef & { mrlHelp: CommandHelp };

/**
 * One CLI command: its flags (shared sets spread in), help text with examples, and a `run` that
 * receives the typed, validated values (defaults < config file < command line).
 */
export function defineMrlCommand<S extends FlagSet>(definition: {
  name: string;
  description: string;
  examples: readonly string[];
  flags: S;
  /** `base` values under the config file, e.g. a saved run config; gets the raw parsed args. */
  base?: (args: Record<string, unknown>) => Promise<Record<string, unknown>>;
  run: (options: Resolved<S>) => Promise<void>;
}): MrlCommand {
  const examples = definition.examples.map((e) => `  $ ${e}`).join('\n');
  const command = defineCommand({
    meta: { name: definition.name, description: `${definition.description}\n\nExamples:\n${examples}\n` },
    args: cittyArgs(definition.flags),
    async run({ args, rawArgs }) {
      const base = definition.base === undefined ? {} : await definition.base(args as Record<string, unknown>);
      const options = await resolveFlags(
        definition.flags,
        args as Record<string, unknown>,
        rawArgs,
        definition.name,
        base,
      );
      await definition.run(options);
    },
  });
  return Object.assign(command, {
    mrlHelp: {
      name: definition.name,
      description: definition.description,
      examples: definition.examples,
      flags: definition.flags,
    },
  });
}

import { describe, expect, it } from 'vitest';
import { cli, expectOneParagraphError } from './helpers.js';

const COMMANDS = ['fit', 'eval', 'embed', 'search', 'report', 'models', 'adapt'];

describe.concurrent('mrl-cli --help', () => {
  it('lists every command with a short description', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\s+\\S`, 'm'));
    expect(r.stdout).toContain('Examples:');
  });

  it.each(COMMANDS)('%s --help shows examples and the shared flags', async (command) => {
    const r = await cli([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`mrl-cli ${command}`);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain(`$ mrl-cli ${command}`);
    expect(r.stdout).toContain('--config');
    expect(r.stdout).toContain('--debug');
  });

  it('fit --help shows --modality as an enum and the training flags', async () => {
    const r = await cli(['fit', '--help']);
    expect(r.stdout).toContain('--modality=<vision|text|align>');
    for (const flag of ['--resume', '--log-format=<text|json>', '--plugin', '--compare', '--train-limit'])
      expect(r.stdout).toContain(flag);
  });

  it('an unknown command is one error paragraph', async () => {
    const r = await cli(['train']);
    expect(r.code).toBe(1);
    expect(expectOneParagraphError(r)).toBe(
      "error: unknown command 'train'. Commands: fit, eval, embed, search, report, models, adapt; run mrl-cli --help.",
    );
  });
});

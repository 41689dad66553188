import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, cli, expectOneParagraphError, type Result } from './helpers.js';

function cliWithEnv(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

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
      "error: unknown command 'train'. Commands: fit, eval, embed, search, report, models, index, export, adapt; run mrl-cli --help.",
    );
  });
});

describe('help and listings in a pipe', () => {
  const COMMANDS_AND_ROOT = [
    [],
    ['fit'],
    ['eval'],
    ['embed'],
    ['search'],
    ['report'],
    ['models'],
    ['index'],
    ['export'],
    ['adapt'],
  ];

  it.each(COMMANDS_AND_ROOT)('%s --help fits 100 columns and has no colour codes', async (...command) => {
    // Spawned with stdout a pipe and NO_COLOR unset: nothing may colour it.
    const env = { ...process.env };
    delete env.NO_COLOR;
    delete env.FORCE_COLOR;
    const r = await cliWithEnv([...command, '--help'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\x1b\[/);
    const widest = Math.max(...r.stdout.split('\n').map((l) => l.length));
    expect(widest).toBeLessThanOrEqual(100);
  });

  it('models lists every encoder within 100 columns, without colour', async () => {
    const env = { ...process.env };
    delete env.NO_COLOR;
    const r = await cliWithEnv(['models'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\x1b\[/);
    expect(Math.max(...r.stdout.split('\n').map((l) => l.length))).toBeLessThanOrEqual(100);
    for (const name of ['mlp', 'resnet-tiny', 'bert-tiny', 'align-tiny']) expect(r.stdout).toContain(`  ${name} (`);
  });

  it('every fit flag that applies to some modalities only says which', async () => {
    const r = await cli(['fit', '--help']);
    expect(r.stdout).toMatch(/--vocab-size=<n>\s+train a WordPiece[^[]*\[text, align\]/);
    expect(r.stdout).toMatch(/--robustness=<value>\s+also evaluate[^[]*\[vision\]/);
  });
});

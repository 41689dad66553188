import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, PLUGIN, REPO, TINY, tempDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('plugin');
});

describe.concurrent('plug-in encoders through DI (examples/custom-encoder)', () => {
  it('models lists core, vision and the plug-in encoder', async () => {
    const plain = await cli(['models']);
    expectOk(plain);
    expect(plain.stdout).toMatch(/^\s+mlp \(vision, default d=64\)$/m);
    expect(plain.stdout).toMatch(/^\s+resnet-tiny \(vision, default d=32\)\n\s+ResNet, basic blocks/m);
    expect(plain.stdout).not.toContain('my-encoder');
    expect(plain.stdout).toMatch(
      /^\s*classification-shared \(any\)\n\s+softmax cross-entropy per nesting dim, one shared head/m,
    );
    const r = await cli(['models', '--plugin', 'examples/custom-encoder/my-encoder.js'], { cwd: REPO });
    expectOk(r);
    expect(r.stdout).toContain(`modules: core, vision`);
    expect(r.stdout).toContain(PLUGIN);
    expect(r.stdout).toMatch(/^\s+my-encoder \(vision, default d=32\)\n\s+example plug-in: tanh MLP/m);
    const json = JSON.parse((await cli(['models', '--plugin', PLUGIN, '--format', 'json'])).stdout);
    expect(json.encoders.find((e: { name: string }) => e.name === 'my-encoder')).toMatchObject({
      modality: 'vision',
      dim: 32,
    });
  });

  it('fit --model my-encoder trains the plug-in; embed reloads it from the run folder', async () => {
    const run = join(dir, 'run');
    const r = await cli(['fit', '--plugin', PLUGIN, '--model', 'my-encoder', ...TINY, '--run-dir', run]);
    expectOk(r);
    expect(r.stdout).toContain('fashion-mnist, my-encoder, d=16, MRL: test set');
    const model = JSON.parse(await readFile(join(run, 'model', 'config.json'), 'utf8'));
    expect(model).toMatchObject({ architecture: 'my-encoder', embeddingDim: 16, hidden: 128 });
    // The run remembers its plug-in, but runs it only when trusted or named again.
    const refused = expectOneParagraphError(
      await cli(['embed', '--run-dir', run, '--limit', '100', '--formats', 'npy']),
    );
    expect(refused).toContain(`names the plug-in ${PLUGIN} in its config.json`);
    expect(refused).toContain('pass --trust-plugins');
    const e = await cli(['embed', '--run-dir', run, '--limit', '100', '--formats', 'npy', '--trust-plugins']);
    expectOk(e);
    expect(e.stdout).toContain('embedded 100 test examples, d=16 -> 16 dims');
  });

  it('plug-ins can be listed in the config file, relative to it', async () => {
    const config = join(REPO, 'examples/custom-encoder/mrl.config.json');
    const r = await cli(['models', '--config', config, '--format', 'json']);
    expectOk(r);
    expect(JSON.parse(r.stdout).modules).toContain(PLUGIN);
  });

  it('a module without a ContainerModule, and a missing plug-in, are clear errors', async () => {
    const bad = join(dir, 'bad-plugin.js');
    await writeFile(bad, 'export const answer = 42;\n');
    expect(expectOneParagraphError(await cli(['models', '--plugin', bad]))).toContain(
      `the plug-in ${bad} exports no inversify ContainerModule (exports: answer).`,
    );
    expect(expectOneParagraphError(await cli(['models', '--plugin', join(dir, 'nope.js')]))).toBe(
      `error: the plug-in ${join(dir, 'nope.js')} does not exist. Check the --plugin path (relative paths start from the current folder, or from the config file for "plugins").`,
    );
  });
});

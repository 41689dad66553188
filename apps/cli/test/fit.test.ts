import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, expectOk, expectOneParagraphError, TINY, tempDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('fit');
});

describe('mrl-cli fit', () => {
  it('trains, prints the per-dim table and writes the run folder', async () => {
    const run = join(dir, 'text');
    const r = await cli(['fit', '--modality', 'vision', '--model', 'mlp', ...TINY, '--run-dir', run]);
    expectOk(r);
    expect(r.stdout).toMatch(
      /fashion-mnist, mlp, d=16, MRL: test set[^\n]*\ndim\s+MRL top-1 %\s+MRL 1-NN %\s+MRL mAP@10\n/,
    );
    expect(r.stdout).toMatch(/^\s+8\s+\d+\.\d\d\s+\d+\.\d\d\s+0\.\d{4}$/m);
    expect(r.stdout).toContain(`metrics: ${join(run, 'metrics.json')}`);
    // Not a terminal: one progress line per 10%, with step, per-prefix loss, throughput and ETA.
    expect(r.stderr).toMatch(/\[mrl\] \S+ 4\/4 loss \d\.\d{4} \d+ ex\/s ETA \d+s\n  8:\d\.\d{3} 16:\d\.\d{3}\n/);
    for (const file of [
      'config.json',
      'metrics.json',
      'checkpoints/mrl/ckpt-00000004.safetensors',
      'model/config.json',
      'model/weights.safetensors',
    ]) {
      expect(existsSync(join(run, file)), file).toBe(true);
    }
    const config = JSON.parse(await readFile(join(run, 'config.json'), 'utf8'));
    expect(config.flags).toMatchObject({ model: 'mlp', dim: 16, epochs: 1, dims: [8, 16], 'train-limit': 512 });
    expect(config.encoder.name).toBe('mlp');
    expect(r.stderr).toMatch(/^backend: wasm \(.*on ONNX Runtime/m); // native kernels by default
  });

  it('--kernels wasm trains on the kernels of the wasm backend', async () => {
    const r = expectOk(
      await cli([
        'fit',
        '--modality',
        'vision',
        '--model',
        'mlp',
        ...TINY,
        '--kernels',
        'wasm',
        '--run-dir',
        join(dir, 'wasm-kernels'),
      ]),
    );
    expect(r.stderr).toMatch(/^backend: wasm \(.*on XNNPACK and mrl wasm kernels\)$/m);
    expect(r.stdout).toMatch(/^\s+16\s+\d+\.\d\d\s+\d+\.\d\d\s+0\.\d{4}$/m);
  });

  it('trains a ResNet and a ViT on Fashion-MNIST and prints their per-dim tables', async () => {
    for (const model of ['resnet-small', 'vit-micro']) {
      const r = expectOk(
        await cli([
          'fit',
          '--modality',
          'vision',
          '--model',
          model,
          '--data',
          'fashion-mnist',
          '--train-limit',
          '256',
          '--test-limit',
          '200',
          '--epochs',
          '1',
          '--dim',
          '16',
          '--run-dir',
          join(dir, model),
        ]),
      );
      expect(r.stdout).toContain(`fashion-mnist, ${model}, d=16, MRL: test set`);
      expect(r.stdout).toMatch(/^\s+8\s+\d+\.\d\d\s+\d+\.\d\d\s+0\.\d{4}$/m);
      expect(r.stdout).toMatch(/^\s+16\s+\d+\.\d\d\s+\d+\.\d\d\s+0\.\d{4}$/m);
      expect(JSON.parse(await readFile(join(dir, model, 'model', 'config.json'), 'utf8')).architecture).toBe(model);
    }
  });

  it('a fresh run in a used folder is refused; with --overwrite it removes the old run first', async () => {
    const run = join(dir, 'reused');
    expectOk(await cli(['fit', ...TINY, '--run-dir', run, '--checkpoint-every', '1']));
    expect(existsSync(join(run, 'checkpoints/mrl/ckpt-00000004.safetensors'))).toBe(true);
    const smaller = [
      'fit',
      '--train-limit',
      '256',
      '--test-limit',
      '500',
      '--epochs',
      '1',
      '--dim',
      '16',
      '--run-dir',
      run,
    ];
    const refused = expectOneParagraphError(await cli(smaller));
    expect(refused).toBe(
      `error: ${run} already holds a run (config.json, checkpoints, model, metrics.json); a fresh fit would replace it. Continue it with --resume, start again with --overwrite (removes config.json, checkpoints, model, metrics.json), or choose another --run-dir.`,
    );
    expect(existsSync(join(run, 'checkpoints/mrl/ckpt-00000004.safetensors'))).toBe(true);
    const again = expectOk(await cli([...smaller, '--overwrite']));
    expect(again.stderr).toContain(
      `starting fresh: removed config.json, checkpoints, model, metrics.json of the earlier run in ${run}`,
    );
    expect(existsSync(join(run, 'checkpoints/mrl/ckpt-00000004.safetensors'))).toBe(false);
    expect(existsSync(join(run, 'checkpoints/mrl/ckpt-00000002.safetensors'))).toBe(true);
  });

  it('--log-format json writes one JSON object per event', async () => {
    const r = await cli(['fit', ...TINY, '--log-format', 'json', '--run-dir', join(dir, 'json')]);
    expectOk(r);
    const events = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(4);
    expect(steps[0]).toMatchObject({ model: 'mrl', step: 1, totalSteps: 4 });
    expect(Object.keys(steps[0].parts)).toEqual(['loss/8', 'loss/16']);
    expect(typeof steps[0].examplesPerSecond).toBe('number');
    expect(typeof steps[0].etaMs).toBe('number');
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ type: 'result', metrics: join(dir, 'json', 'metrics.json') });
  });

  it('draws a progress bar redrawn in place on a pseudo-terminal', () => {
    // util-linux `script` gives the command a pty; its output is the terminal session.
    const command = `${process.execPath} ${BIN} fit ${TINY.join(' ')} --batch-size 64 --run-dir ${join(dir, 'pty')}`;
    const r = spawnSync('script', ['-qfec', command, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    const redraws = r.stdout.split('\r\x1b[2K').slice(1);
    expect(redraws.length).toBe(8);
    expect(redraws[0]).toMatch(
      /^\[mrl\] █{3}░{17} 1\/8 loss \d\.\d{4} \(8:\d\.\d{3} 16:\d\.\d{3}\) \d+ ex\/s ETA \d+s/,
    );
    expect(redraws[7]).toMatch(/^\[mrl\] █{20} 8\/8 loss/);
    expect(r.stdout).toContain('fashion-mnist, mlp, d=16, MRL: test set');
  });

  it('Ctrl-C stops after writing a checkpoint, and --resume continues from it', async () => {
    const run = join(dir, 'interrupt');
    const args = [
      'fit',
      '--train-limit',
      '2048',
      '--test-limit',
      '300',
      '--epochs',
      '1',
      '--dim',
      '16',
      '--batch-size',
      '16',
      '--checkpoint-every',
      '4',
      '--run-dir',
      run,
    ];
    let sent = false;
    const r = await cli(args, {
      onStderr: (all, child) => {
        if (!sent && / \d+\/128 loss/.test(all)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('stopping after this step');
    const stopped = /\[mrl\] stopped at step (\d+); checkpoint written, continue with --resume/.exec(r.stderr);
    expect(stopped).not.toBeNull();
    const step = Number(stopped![1]);
    expect(step).toBeLessThan(128);
    expect(existsSync(join(run, 'checkpoints', 'mrl', `ckpt-${String(step).padStart(8, '0')}.safetensors`))).toBe(true);
    expect(existsSync(join(run, 'metrics.json'))).toBe(false);

    // --resume takes the saved flags from the run folder.
    const resumed = await cli(['fit', '--run-dir', run, '--resume']);
    expectOk(resumed);
    expect(resumed.stderr).toContain(
      `[mrl] resuming from ${join(run, 'checkpoints', 'mrl', `ckpt-${String(step).padStart(8, '0')}.safetensors`)} (step ${step})`,
    );
    expect(resumed.stderr).toContain('128/128');
    expect(resumed.stdout).toContain('fashion-mnist, mlp, d=16, MRL: test set');
  });

  it('takes flags from --config and lets command-line flags override them', async () => {
    const config = join(dir, 'mrl.config.json');
    const run = join(dir, 'configured');
    await writeFile(
      config,
      JSON.stringify({
        dim: 32,
        epochs: 1,
        trainLimit: 256,
        'test-limit': 200,
        'run-dir': 'configured',
        head: 'shared',
      }),
    );
    const r = await cli(['fit', '--config', config, '--dim', '16']);
    expectOk(r);
    expect(r.stdout).toContain('fashion-mnist, mlp, d=16, MRL-E: test set');
    const saved = JSON.parse(await readFile(join(run, 'config.json'), 'utf8'));
    expect(saved.flags).toMatchObject({ dim: 16, epochs: 1, 'train-limit': 256, head: 'shared', 'run-dir': run });
  });
});

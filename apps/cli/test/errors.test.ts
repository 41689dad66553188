import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, tempDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('errors');
});

describe.concurrent('user errors end in one paragraph with the fix, exit 1, no stack', () => {
  it('missing data folder', async () => {
    const r = await cli(['fit', '--data-dir', join(dir, 'nowhere'), '--run-dir', join(dir, 'run-a')]);
    const line = expectOneParagraphError(r);
    expect(line).toContain(`the Fashion-MNIST folder ${join(dir, 'nowhere')} does not exist.`);
    expect(line).toContain('pass --data-dir with the IDX files');
  });

  it('wrong model name lists the known ones', async () => {
    const line = expectOneParagraphError(await cli(['fit', '--model', 'resnet-huge', '--run-dir', join(dir, 'run-b')]));
    expect(line).toMatch(
      /^error: unknown vision model 'resnet-huge'\. Known vision models: mlp, resnet-tiny, .*run mrl-cli models/,
    );
  });

  it('dims larger than d', async () => {
    const line = expectOneParagraphError(
      await cli(['fit', '--dim', '16', '--dims', '8,32', '--run-dir', join(dir, 'run-c')]),
    );
    expect(line).toContain('dims[1] = 32 is not an integer in [1, 16]');
  });

  it('--head-lr-scale must be > 0, and reaches the vision run', async () => {
    const line = expectOneParagraphError(
      await cli([
        'fit',
        '--head-lr-scale',
        '0',
        '--dim',
        '16',
        ...['--train-limit', '256', '--epochs', '1'],
        '--run-dir',
        join(dir, 'run-hl'),
      ]),
    );
    expect(line).toContain('headLrScale must be a finite number > 0, got 0.');
  });

  it('loss weights: one per nesting dim, numbers, vision only', async () => {
    const count = expectOneParagraphError(
      await cli(['fit', '--dim', '64', '--weights', '2,1', '--run-dir', join(dir, 'run-w1')]),
    );
    expect(count).toContain('weights has 2 entries but there are 4 nesting dims (8, 16, 32, 64).');
    const text = expectOneParagraphError(await cli(['fit', '--weights', 'two,1', '--run-dir', join(dir, 'run-w2')]));
    expect(text).toContain('--weights must be a list of numbers (array or "2,1,0.5"), got \'two,1\'.');
    const modality = expectOneParagraphError(
      await cli(['fit', '--modality', 'text', '--weights', '2,1', '--run-dir', join(dir, 'run-w3')]),
    );
    expect(modality).toContain('--weights applies to vision and align runs, not --modality text.');
  });

  it('embed --dim larger than the model d', async () => {
    // A run folder is needed: train the smallest model quickly.
    const run = join(dir, 'run-small');
    const fit = await cli([
      'fit',
      '--train-limit',
      '256',
      '--test-limit',
      '200',
      '--epochs',
      '1',
      '--dim',
      '8',
      '--run-dir',
      run,
    ]);
    expectOk(fit);
    const line = expectOneParagraphError(await cli(['embed', '--run-dir', run, '--dim', '64', '--formats', 'npy']));
    expect(line).toBe(
      "error: --dim 64 is larger than the model's embedding dim d = 8. Use --dim between 1 and 8; Matryoshka prefixes are the first dims of the d-dim embedding.",
    );
  });

  it('config file: unknown field names it and suggests the right one', async () => {
    const path = join(dir, 'unknown.json');
    await writeFile(path, JSON.stringify({ epoch: 3 }));
    const line = expectOneParagraphError(await cli(['fit', '--config', path]));
    expect(line).toBe(
      `error: ${path}: unknown field 'epoch'. Did you mean 'epochs'? Fields are flag names (e.g. "epochs", "data-dir", "plugins"); run mrl-cli <command> --help for the list.`,
    );
  });

  it('config file: wrong type names the field', async () => {
    const path = join(dir, 'type.json');
    await writeFile(path, JSON.stringify({ 'batch-size': 'big' }));
    const line = expectOneParagraphError(await cli(['fit', '--config', path]));
    expect(line).toBe(
      `error: ${path}: field 'batch-size' must be an integer, got "big" (string). Fix the field 'batch-size' in ${path} or remove it.`,
    );
  });

  it('config file: bad enum value and invalid JSON', async () => {
    const path = join(dir, 'enum.json');
    await writeFile(path, JSON.stringify({ modality: 'audio' }));
    expect(expectOneParagraphError(await cli(['fit', '--config', path]))).toContain(
      'field \'modality\' must be one of vision, text, align, got "audio" (string)',
    );
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{ "epochs": 3, }');
    expect(expectOneParagraphError(await cli(['fit', '--config', broken]))).toContain(`${broken} is not valid JSON`);
  });

  it('unknown backend', async () => {
    const line = expectOneParagraphError(await cli(['fit', '--backend', 'tpu', '--run-dir', join(dir, 'run-d')]));
    expect(line).toBe("error: unknown backend 'tpu'. Choose one of: wasm, cpu, webgpu, tensorflow.");
  });

  it('unknown kernel source', async () => {
    const line = expectOneParagraphError(await cli(['fit', '--kernels', 'blas', '--run-dir', join(dir, 'run-k')]));
    expect(line).toContain('--kernels');
    expect(line).toContain('auto, onnxruntime, wasm');
  });

  it('corrupt checkpoint on --resume', async () => {
    const run = join(dir, 'run-corrupt');
    await mkdir(join(run, 'checkpoints', 'mrl'), { recursive: true });
    await writeFile(join(run, 'checkpoints', 'mrl', 'ckpt-00000010.safetensors'), 'not a checkpoint at all');
    const line = expectOneParagraphError(
      await cli(['fit', '--run-dir', run, '--resume', '--train-limit', '256', '--epochs', '1', '--dim', '8']),
    );
    expect(line).toContain(
      `${join(run, 'checkpoints', 'mrl', 'ckpt-00000010.safetensors')} is not a valid safetensors file`,
    );
    expect(line).toContain('resume from an older one');
  });

  it('bad flag values, unknown flags and enum values', async () => {
    expect(expectOneParagraphError(await cli(['fit', '--epochs', 'ten']))).toBe(
      "error: --epochs must be a number, got 'ten'. Run the command with --help to see its flags.",
    );
    expect(
      expectOneParagraphError(await cli(['fit', '--robustness', 'fog:2', '--run-dir', join(dir, 'run-fog')])),
    ).toBe(
      "error: unknown corruption 'fog' in 'fog:2'. Known corruptions: gaussian-noise, gaussian-blur, contrast (optionally :severity 1-5).",
    );
    expect(expectOneParagraphError(await cli(['fit', '--epoch', '3']))).toBe(
      'error: unknown flag --epoch for mrl-cli fit. Did you mean --epochs? Run mrl-cli fit --help for its flags.',
    );
    expect(expectOneParagraphError(await cli(['fit', '--modality', 'audio']))).toBe(
      'error: Invalid value for argument: --modality (audio). Expected one of: vision, text, align. Run mrl-cli fit --help to see the choices.',
    );
  });

  it('a model of another modality; text needs a text task; align data folder missing', async () => {
    const align = expectOneParagraphError(await cli(['fit', '--modality', 'align', '--model', 'resnet-tiny']));
    expect(align).toContain("model 'resnet-tiny' is a vision encoder, not align");
    const text = expectOneParagraphError(
      await cli(['fit', '--modality', 'text', '--model', 'bert-tiny', '--dim', '128']),
    );
    expect(text).toBe(
      "error: --dim does not apply to text runs: a text encoder's d is its hidden size. Pick a model " +
        '(--model bert-mini) or set it with --model-config \'{"embeddingDim":256}\'; --dims picks the nesting dims.',
    );
    const wrongData = expectOneParagraphError(await cli(['fit', '--modality', 'text', '--data', 'fashion-mnist']));
    expect(wrongData).toBe(
      "error: --data 'fashion-mnist' is not a data set of the text classify task. With --task classify, pass an " +
        'existing .jsonl, .csv or .tsv file, or leave out --data (it reads wordnet).',
    );
    const missing = join(dir, 'no-openclipart');
    const clipart = expectOneParagraphError(
      await cli(['fit', '--modality', 'align', '--data-dir', missing, '--run-dir', join(dir, 'run-align')]),
    );
    expect(clipart).toContain(missing);
    expect(clipart).toContain('--data pairs.jsonl');
  });

  it('a missing run folder for eval and embed', async () => {
    expect(expectOneParagraphError(await cli(['eval', '--run-dir', join(dir, 'none')]))).toContain(
      'Run mrl-cli fit with this --run-dir first',
    );
    expect(expectOneParagraphError(await cli(['embed', '--run-dir', join(dir, 'none')]))).toContain(
      'there is no trained model in',
    );
    expect(expectOneParagraphError(await cli(['eval']))).toContain('mrl-cli eval needs --run-dir');
  });

  it('flags are checked against the modality and their range before anything runs', async () => {
    const threads = expectOneParagraphError(await cli(['fit', '--threads', '0', '--run-dir', join(dir, 'run-t')]));
    expect(threads).toBe('error: --threads must be greater than 0, got 0. Give a positive --threads or leave it out.');
    const vocab = expectOneParagraphError(await cli(['fit', '--vocab-size', '512', '--run-dir', join(dir, 'run-v')]));
    expect(vocab).toBe(
      'error: --vocab-size applies to text and align runs, not --modality vision. Leave out --vocab-size.',
    );
    const json = expectOneParagraphError(
      await cli(['fit', '--modality', 'text', '--model-config', '{numLayers:1}', '--run-dir', join(dir, 'run-j')]),
    );
    expect(json).toMatch(/^error: --model-config is not valid JSON: .*Write it as a JSON object/);
    const gallery = expectOneParagraphError(
      await cli(['fit', '--modality', 'align', '--gallery', 'every', '--run-dir', join(dir, 'run-g')]),
    );
    expect(gallery).toBe(
      'error: Invalid value for argument: --gallery (every). Expected one of: test, all. Run mrl-cli fit --help to see the choices.',
    );
    const galleryVision = expectOneParagraphError(
      await cli(['fit', '--gallery', 'all', '--run-dir', join(dir, 'run-gv')]),
    );
    expect(galleryVision).toBe('error: --gallery applies to align runs, not --modality vision. Leave out --gallery.');
    // None of them made a run folder.
    for (const name of ['run-t', 'run-v', 'run-j', 'run-g', 'run-gv']) expect(existsSync(join(dir, name))).toBe(false);
  });

  it('--debug adds the stack', async () => {
    const r = await cli(['fit', '--backend', 'tpu', '--debug', '--run-dir', join(dir, 'run-e')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: unknown backend 'tpu'.");
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

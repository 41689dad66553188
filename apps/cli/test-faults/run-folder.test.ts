import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, expectOk, expectOneParagraphError, PLUGIN, TINY, tempDir, type Result } from '../test/helpers.js';

let dir: string;
let base: string;
beforeAll(async () => {
  dir = await tempDir('faults-run');
  base = join(dir, 'base');
  expectOk(await cli(['fit', ...TINY, '--checkpoint-every', '2', '--run-dir', base]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every file under `root` with its SHA-256 (and every folder), for "nothing changed" checks. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (folder: string): Promise<void> => {
    for (const name of (await readdir(folder)).sort()) {
      const path = join(folder, name);
      if ((await stat(path)).isDirectory()) {
        out.set(`${path}/`, 'folder');
        await walk(path);
      } else
        out.set(
          path,
          createHash('sha256')
            .update(await readFile(path))
            .digest('hex'),
        );
    }
  };
  await walk(root);
  return out;
}

/** Runs `jobs` at most `width` at a time (the CLI starts take most of the time). */
async function pool<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

/** Bad values for the flags of `fit --help`, each with a piece of the message it must give. */
const BAD_FLAGS: [string[], string][] = [
  [['--dim', '0'], '--dim 0 must be a whole number of at least 1'],
  [['--dim', 'x'], "--dim must be an integer, got 'x'"],
  [['--dims', '8,999'], '999'],
  [['--weights', '1,1,1,1,1,1,1'], 'weights'],
  [['--head', 'both'], 'head'],
  [['--epochs', '0'], '--epochs 0 must be greater than 0'],
  [['--epochs', '-1'], '--epochs -1 must be greater than 0'],
  [['--batch-size', '0'], '--batch-size 0 must be a whole number of at least 1'],
  [['--optimizer', 'rmsprop'], 'optimizer'],
  [['--lr', '0'], '--lr 0 must be a learning rate greater than 0'],
  [['--lr', '-0.1'], '--lr -0.1 must be a learning rate greater than 0'],
  [['--weight-decay', '-1'], '--weight-decay -1 must be 0 or more'],
  [['--warmup-steps', '-1'], '--warmup-steps -1 must be a whole number of 0 or more'],
  [
    ['--warmup-steps', '100000'],
    '--warmup-steps 100000 is more than the 4 steps this run trains. Use --warmup-steps 0 or fewer.',
  ],
  [['--clip-norm', '0'], '--clip-norm 0 must be greater than 0'],
  [['--train-limit', '0'], '--train-limit 0 must be a whole number of at least 1'],
  [['--test-limit', '0'], '--test-limit 0 would leave no test examples'],
  [['--compare', 'pca'], "--compare 'pca' is not a baseline of vision runs"],
  [['--task', 'translate'], 'task'],
  [['--robustness', 'fog:2'], "unknown corruption 'fog'"],
  [['--seed', '1.5'], "--seed must be an integer, got '1.5'"],
  [['--checkpoint-every', '0'], '--checkpoint-every 0 must be a whole number of at least 1'],
  [['--keep-checkpoints', '0'], '--keep-checkpoints 0 must be a whole number of at least 1'],
  [['--from-checkpoint', '3'], 'has no checkpoint of step 3. Steps with a checkpoint: 2, 4.'],
  [['--from-checkpoint', 'latest'], 'is neither a step number nor a checkpoint file'],
  [['--log-format', 'xml'], 'log-format'],
  [['--model', 'resnet-huge'], "unknown vision model 'resnet-huge'"],
  [['--modality', 'audio'], 'modality'],
  [['--backend', 'tpu'], "unknown backend 'tpu'"],
  [['--kernels', 'blas'], 'kernels'],
  [['--config', '/nonexistent/mrl.json'], 'cannot read the config file'],
  [['--plugin', '/nonexistent/plugin.js'], 'the plug-in /nonexistent/plugin.js does not exist'],
  [['--epoch', '2'], 'unknown flag --epoch'],
  // Found only when the data loads, after a resumed run rewrote config.json: put back on exit.
  [['--data-dir', '/nonexistent/fashion-mnist'], 'the Fashion-MNIST folder /nonexistent/fashion-mnist does not exist'],
];

describe('bad flags against a used run folder', () => {
  it('every bad flag of fit --help fails with its message and changes nothing (with --resume; some fresh)', async () => {
    const before = await snapshot(base);
    expect(before.has(join(base, 'checkpoints/mrl/ckpt-00000004.safetensors'))).toBe(true);
    // With --resume every flag meets the saved config; a fresh fit checks the same flags first.
    const fresh = new Set(['--dim', '--epochs', '--lr', '--test-limit', '--robustness']);
    const jobs = BAD_FLAGS.flatMap(([flags, message]) =>
      [['--resume'], ...(fresh.has(flags[0]!) ? [[]] : [])].map(
        (mode) => async (): Promise<[string, Result, string]> => {
          const args = ['fit', '--run-dir', base, ...mode, ...flags];
          return [args.join(' '), await cli(args), message];
        },
      ),
    );
    for (const [args, result, message] of await pool(jobs, 4)) {
      const line = expectOneParagraphError(result);
      expect(line, args).toContain(message);
      expect(result.code, args).toBe(1);
    }
    expect(await snapshot(base)).toEqual(before);
  });

  it('a fresh fit refuses the used folder and names what it would replace', async () => {
    const before = await snapshot(base);
    const line = expectOneParagraphError(await cli(['fit', ...TINY, '--run-dir', base]));
    expect(line).toContain('already holds a run (config.json, checkpoints, model, metrics.json)');
    expect(line).toContain('--overwrite');
    expect(await snapshot(base)).toEqual(before);
  });

  it('--resume on a missing folder is an error and creates nothing', async () => {
    const missing = join(dir, 'never-trained');
    const line = expectOneParagraphError(await cli(['fit', '--run-dir', missing, '--resume']));
    expect(line).toBe(
      `error: --resume needs an earlier run, but ${missing} does not exist. Check --run-dir (it must be the folder an earlier fit wrote), or leave out --resume to train from scratch.`,
    );
    expect(existsSync(missing)).toBe(false);
  });
});

describe('run-folder lock', () => {
  it('a second fit on a folder in use is refused; the first goes on untouched and unlocks at exit', async () => {
    const run = join(dir, 'busy');
    let second: Promise<Result> | undefined;
    let refusal: Result | undefined;
    const first = await cli(
      [
        'fit',
        ...['--train-limit', '2048', '--test-limit', '200', '--epochs', '50', '--dim', '16', '--batch-size', '64'],
        ...['--log-format', 'json', '--run-dir', run],
      ],
      {
        onStderr: (all, child) => {
          if (second === undefined && all.includes('"type":"step"')) {
            second = cli(['fit', ...TINY, '--overwrite', '--run-dir', run]).then((r) => {
              refusal = r;
              // Then stop the first run as a user would.
              child.kill('SIGINT');
              return r;
            });
          }
        },
      },
    );
    await second;
    expect(refusal).toBeDefined();
    expect(expectOneParagraphError(refusal!)).toMatch(
      new RegExp(`^error: the run folder ${run} is in use: mrl-cli fit \\(process \\d+, since [0-9T:.Z-]+\\) holds `),
    );
    expect(first.code).toBe(130);
    expect(first.stderr).toContain('"type":"stopped"');
    expect(refusal!.stderr).not.toContain('starting fresh');
    expect(existsSync(join(run, 'config.json'))).toBe(true);
    expect((await readdir(join(run, 'checkpoints/mrl'))).length).toBeGreaterThan(0);
    expect(existsSync(join(run, '.mrl-lock'))).toBe(false);
  });

  it('a stale lock (its process is gone, e.g. after kill -9) is taken over with a note', async () => {
    const run = join(dir, 'stale');
    await cp(base, run, { recursive: true });
    // The pid of a process that has exited.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(gone.stdout);
    await writeFile(
      join(run, '.mrl-lock'),
      JSON.stringify({ pid, host: hostname(), command: 'fit', startedAt: '2026-01-01T00:00:00.000Z' }),
    );
    const r = expectOk(await cli(['embed', '--run-dir', run, '--limit', '50', '--formats', 'npy']));
    expect(r.stderr).toContain(
      `note: took over a stale lock of ${run} (mrl-cli fit, process ${pid}, is no longer running)`,
    );
    expect(existsSync(join(run, '.mrl-lock'))).toBe(false);
  });

  it('a lock held on another host is refused, naming the host and what to delete', async () => {
    const run = join(dir, 'remote');
    await cp(base, run, { recursive: true });
    await writeFile(
      join(run, '.mrl-lock'),
      JSON.stringify({ pid: 1, host: 'elsewhere', command: 'fit', startedAt: '2026-01-01T00:00:00.000Z' }),
    );
    const before = await snapshot(run);
    const line = expectOneParagraphError(await cli(['fit', '--run-dir', run, '--resume']));
    expect(line).toContain('(process 1 on host elsewhere, since 2026-01-01T00:00:00.000Z)');
    expect(line).toContain(`If no mrl-cli runs on elsewhere any more, delete ${join(run, '.mrl-lock')} and run again.`);
    expect(await snapshot(run)).toEqual(before);
  });
});

describe('signals', () => {
  it('SIGTERM stops after the step with a checkpoint, like Ctrl-C, and --resume finishes the run', async () => {
    const run = join(dir, 'term');
    let sent = false;
    const r = await cli(
      [
        'fit',
        ...['--train-limit', '2048', '--test-limit', '200', '--epochs', '2', '--dim', '16', '--batch-size', '64'],
        ...['--log-format', 'json', '--run-dir', run],
      ],
      {
        onStderr: (all, child) => {
          if (!sent && all.includes('"step":3,')) {
            sent = true;
            child.kill('SIGTERM');
          }
        },
      },
    );
    expect(r.code).toBe(130);
    const stopped = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; step?: number })
      .find((e) => e.type === 'stopped');
    expect(stopped?.step).toBeGreaterThanOrEqual(3);
    const step = String(stopped!.step).padStart(8, '0');
    expect(existsSync(join(run, `checkpoints/mrl/ckpt-${step}.safetensors`))).toBe(true);
    const resumed = expectOk(await cli(['fit', '--run-dir', run, '--resume']));
    expect(resumed.stderr).toContain(`"resumedFrom":"${join(run, `checkpoints/mrl/ckpt-${step}.safetensors`)}"`);
  });
});

describe('plug-ins named by a run folder', () => {
  it('do not run without --trust-plugins or being named on the command line', async () => {
    const marker = join(dir, 'plugin-ran');
    const plugin = join(dir, 'marking-plugin.js');
    // The example plug-in plus a mark left when it is imported: proof of whether its code ran.
    await writeFile(
      plugin,
      `${await readFile(PLUGIN, 'utf8')}\nimport { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\n`,
    );
    const run = join(dir, 'plugin-run');
    expectOk(await cli(['fit', '--plugin', plugin, '--model', 'my-encoder', ...TINY, '--run-dir', run]));
    expect(existsSync(marker)).toBe(true);
    await rm(marker);
    const before = await snapshot(run);
    for (const args of [
      ['embed', '--run-dir', run, '--limit', '50', '--formats', 'npy'],
      ['fit', '--run-dir', run, '--resume'],
    ]) {
      const line = expectOneParagraphError(await cli(args));
      expect(line).toBe(
        `error: the run folder ${run} names the plug-in ${plugin} in its config.json, and a plug-in is code that runs with your rights, so it is not loaded on the run folder's word. If you trust it, pass --trust-plugins, or name it yourself: --plugin ${plugin}.`,
      );
      expect(existsSync(marker)).toBe(false);
    }
    expect(await snapshot(run)).toEqual(before);
    expectOk(await cli(['embed', '--run-dir', run, '--limit', '50', '--formats', 'npy', '--plugin', plugin]));
    expect(existsSync(marker)).toBe(true);
    await rm(marker);
    expectOk(await cli(['embed', '--run-dir', run, '--limit', '50', '--formats', 'npy', '--trust-plugins']));
    expect(existsSync(marker)).toBe(true);
  });
});

describe('file-system errors', () => {
  it('ENOTDIR, EEXIST and EISDIR are explained in one paragraph naming the path', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder\n');
    expect(expectOneParagraphError(await cli(['fit', ...TINY, '--run-dir', join(file, 'run')]))).toBe(
      `error: cannot create the run folder: a part of the path is a file, not a folder (ENOTDIR) at ${join(file, 'run')}. Rename or remove the file that stands where a folder is expected, or choose another path.`,
    );
    const eexist = expectOneParagraphError(
      await cli(['embed', '--run-dir', base, '--limit', '20', '--formats', 'npy', '--out', join(file, 'emb')]),
    );
    expect(eexist).toMatch(/something already exists at the path \(EEXIST\)|a part of the path is a file/);
    expect(eexist).toContain(file);
    const folder = join(dir, 'out-folder');
    await mkdir(`${folder}.npy`, { recursive: true });
    const eisdir = expectOneParagraphError(
      await cli(['embed', '--run-dir', base, '--limit', '20', '--formats', 'npy', '--out', folder]),
    );
    expect(eisdir).toContain(`cannot write ${folder}.npy`);
    expect(eisdir).toContain('the path is a folder, not a file (EISDIR)');
  });
});

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types
import { maxRelativeDiff, parseArgs, parseTfFlags } from '../args.mjs';

// The pack's full run (pack, unpack, train on lavapipe) takes minutes and is a script
// (README.md); these are the fast checks: options, run.sh's argument validation, and what
// pack.sh puts in the pack.

const dir = fileURLToPath(new URL('..', import.meta.url));
const run = (script: string, args: string[]) => spawnSync('bash', [`${dir}/${script}`, ...args], { encoding: 'utf8' });

describe('check.mjs options', () => {
  it('defaults to the four models on webgpu against cpu', () => {
    expect(parseArgs([])).toMatchObject({
      backend: 'webgpu',
      reference: 'cpu',
      models: ['mlp', 'resnet18', 'vit', 'bert'],
      steps: 3,
      tolerance: 1e-3,
    });
  });

  it('names an unknown model and lists the known ones', () => {
    expect(() => parseArgs(['--models', 'mlp,resnet50'])).toThrow(
      "unknown model 'resnet50'; known: mlp, resnet18, vit, bert",
    );
  });

  it('needs two steps at least (the first is not timed)', () => {
    expect(() => parseArgs(['--steps', '1'])).toThrow("--steps must be a number >= 2, got '1'");
  });

  it('refuses a reference that is the backend under test', () => {
    expect(() => parseArgs(['--backend', 'wasm', '--reference', 'wasm'])).toThrow(
      "--reference must differ from --backend (both 'wasm')",
    );
  });

  it('refuses an option without its value', () => {
    expect(() => parseArgs(['--models', '--steps', '3'])).toThrow('--models needs a value');
  });

  it('profiles no step unless asked, and lists the kernels asked for', () => {
    expect(parseArgs([]).profile).toBe(0);
    expect(parseArgs(['--profile', '8']).profile).toBe(8);
    expect(() => parseArgs(['--profile', '-1'])).toThrow("--profile must be a number >= 0, got '-1'");
  });

  it('reads TF.js flags as booleans, numbers and strings, and refuses what is not NAME=VALUE', () => {
    expect(parseArgs(['--tf-flags', 'WEBGPU_CPU_FORWARD=false,WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64']).tfFlags).toEqual({
      WEBGPU_CPU_FORWARD: false,
      WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: 64,
    });
    expect(parseTfFlags('WEBGPU_PRINT_SHADER=all,DEBUG=true')).toEqual({ WEBGPU_PRINT_SHADER: 'all', DEBUG: true });
    expect(() => parseArgs(['--tf-flags', 'webgpu_cpu_forward=false'])).toThrow(
      "--tf-flags: 'webgpu_cpu_forward=false' is not NAME=VALUE",
    );
    expect(() => parseTfFlags('WEBGPU_CPU_FORWARD')).toThrow("'WEBGPU_CPU_FORWARD' is not NAME=VALUE");
  });

  it('compares losses relative to the reference, and a NaN never agrees', () => {
    expect(maxRelativeDiff([2, 4.004], [2, 4])).toBeCloseTo(1e-3, 12);
    expect(maxRelativeDiff([1, Number.NaN], [1, 1])).toBe(Number.POSITIVE_INFINITY);
    expect(maxRelativeDiff([1, 1], [1])).toBe(Number.POSITIVE_INFINITY); // a missing step
  });
});

describe('run.sh arguments', () => {
  it('prints its usage', () => {
    const r = run('run.sh', ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('usage: run.sh [--models mlp,resnet18,vit,bert] [--steps N]');
  });

  it.each([
    [['--frobnicate'], "unknown argument '--frobnicate'"],
    [['--steps'], '--steps needs a value'],
    [['--steps', '1'], "--steps must be a whole number >= 2 (the first step is not timed), got '1'"],
    [['--reference', 'gpu'], "--reference must be cpu, wasm or none, got 'gpu'"],
    [['--icd', '/nonexistent/nvidia_icd.json'], "--icd: no Vulkan ICD file '/nonexistent/nvidia_icd.json'"],
    [['--profile', 'all'], "--profile must be a whole number of kernels to list (0: none), got 'all'"],
    [['--tf-flags'], '--tf-flags needs a value'],
  ])('refuses %j with exit 2 and the reason', (args, message) => {
    const r = run('run.sh', args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`run.sh: ${message}`);
    expect(r.stderr).toContain('usage: run.sh');
  });

  it('says it runs inside an unpacked pack when started from the repository', () => {
    const r = run('run.sh', ['--no-torch']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('run.sh runs inside an unpacked GPU check pack');
  });
});

// pack.sh --list stages the pack (bundling the check) without compressing it; it needs the build,
// the optional webgpu package and Debian's libvulkan1 (scripts/setup.sh installs it), and says
// which is missing.
describe('pack.sh --list', () => {
  it("holds Node, the bundled check, Dawn for linux-x64 only, Debian's Vulkan loader, run.sh", () => {
    const r = spawnSync('bash', [`${dir}/pack.sh`, '--list'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = new Map(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith('./') || /^\d+ \.\//.test(l))
        .map((l) => {
          const [size, name] = l.split(' ');
          return [name!, Number(size)];
        }),
    );
    for (const f of [
      './bin/node',
      './app/check.mjs',
      './app/dist/linux-x64/dawn.node',
      './app/wasm/tfjs-backend-wasm-simd.wasm',
      './lib/libvulkan.so.1',
      './torch/torch_cuda.py',
      './torch/torch_speed.py',
      './run.sh',
      './MANIFEST',
    ]) {
      expect(files.has(f), `${f} in the pack`).toBe(true);
    }
    expect([...files.keys()].filter((f) => /darwin|win32|arm64/.test(f))).toEqual([]);
    // The Node binary is the one running this test, byte for byte in size.
    expect(files.get('./bin/node')).toBe(
      Number(spawnSync('stat', ['-c', '%s', process.execPath], { encoding: 'utf8' }).stdout),
    );
    // No node_modules: everything JavaScript is in the one bundle.
    expect([...files.keys()].some((f) => f.includes('node_modules'))).toBe(false);
    const total = Number(/total (\d+) bytes uncompressed/.exec(r.stdout)?.[1]);
    expect(total).toBeGreaterThan(100 * 2 ** 20); // Node and Dawn alone are ~115 MiB before xz
    expect(total).toBeLessThan(160 * 2 ** 20);
  });
});

// The CPU speed pack (pack.sh --cpu): bench/speed.mjs bundled, with the native files the kernels
// load at run time. It needs the oneDNN addon built (scripts/setup.sh builds it) and Debian's
// libdnnl2; packing and running it is cpu-pack-test.sh.
describe('pack.sh --cpu --list', () => {
  it("holds Node, bench/speed.mjs bundled, onnxruntime-node for linux-x64, the oneDNN addon and Debian's libdnnl", () => {
    const r = spawnSync('bash', [`${dir}/pack.sh`, '--cpu', '--list'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = new Map(
      r.stdout
        .split('\n')
        .filter((l) => /^\d+ \.\//.test(l))
        .map((l) => {
          const [size, name] = l.split(' ');
          return [name!, Number(size)];
        }),
    );
    for (const f of [
      './bin/node',
      './bin/python3',
      // The bundle sits where @mrl/kernels' dist/native/ files do, so that the addon's relative
      // path (../../native/build/onednn.node) and onnxruntime-node's lookup hold in the pack.
      './app/dist/native/speed.mjs',
      './app/dist/native/torch_speed.py',
      './app/native/build/onednn.node',
      './app/node_modules/onnxruntime-node/package.json',
      './app/node_modules/onnxruntime-node/dist/binding.js',
      './app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1',
      './app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
      './app/node_modules/onnxruntime-common/dist/cjs/index.js',
      './app/wasm/tfjs-backend-wasm-simd.wasm',
      './lib/libdnnl.so.2',
      './lib/libgomp.so.1',
      './lib/libOpenCL.so.1',
      './run-speed.sh',
      './MANIFEST',
    ]) {
      expect(files.has(f), `${f} in the pack`).toBe(true);
    }
    // No other platform's ONNX Runtime, no CUDA provider, no webgpu, no type declarations.
    expect([...files.keys()].filter((f) => /darwin|win32|arm64|cuda|dawn|webgpu|\.d\.ts$|\.map$/.test(f))).toEqual([]);
    const total = Number(/total (\d+) bytes uncompressed/.exec(r.stdout)?.[1]);
    expect(total).toBeGreaterThan(150 * 2 ** 20); // Node, ONNX Runtime and oneDNN are ~175 MiB before xz
    expect(total).toBeLessThan(230 * 2 ** 20);
  });

  it('refuses an unknown option, naming --cpu among the known ones', () => {
    const r = spawnSync('bash', [`${dir}/pack.sh`, '--gpu'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("pack.sh: unknown option '--gpu' (known: --cpu, --list, --help)");
  });

  it('run-speed.sh says it runs inside an unpacked pack when started from the repository', () => {
    const r = run('run-speed.sh', ['--threads', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('run-speed.sh runs inside an unpacked CPU speed pack');
  });
});

describe("the packs' header", () => {
  // A pack of two files made as pack.sh makes one (MANIFEST, tar, xz, header with its offset), then
  // unpacked: as built, and with one file changed after the MANIFEST was written.
  const make = (damage: boolean): ReturnType<typeof spawnSync> =>
    spawnSync(
      'bash',
      [
        '-c',
        `set -eu
work=$(mktemp -d); mkdir -p "$work/t-pack"; cd "$work/t-pack"
printf 'echo ran "$@"\\n' > run.sh; printf 'data' > file.bin
find . -type f ! -name MANIFEST | sort | xargs sha256sum > MANIFEST
if [ ${damage ? 1 : 0} = 1 ]; then printf 'dat4' > file.bin; fi
tar -C "$work" -cf - t-pack | xz -c > "$work/payload"
sed -e 's/@NAME@/t-pack/g' -e 's/@VAR@/T_PACK/g' -e 's/@RUN@/run.sh/g' "${dir}/header.sh" > "$work/header"
offset=$(($(wc -c < "$work/header") + 1))
sed -i "s/^payload_offset=@@@@@@@@@@$/payload_offset=$(printf '%010d' "$offset")/" "$work/header"
cat "$work/header" "$work/payload" > "$work/t-pack.run"
T_PACK_DIR="$work/out" sh "$work/t-pack.run" a b`,
      ],
      { encoding: 'utf8' },
    );

  it('checks every unpacked file against the MANIFEST, then runs the runner', () => {
    const ok = make(false);
    expect(ok.status, String(ok.stderr)).toBe(0);
    expect(ok.stdout).toContain('ran a b');
    const bad = make(true);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('./file.bin: FAILED');
    expect(bad.stderr).toContain("t-pack: the unpacked files differ from the pack's MANIFEST");
    expect(bad.stdout).not.toContain('ran');
  });
});

import { existsSync } from 'node:fs';
import { expect, vi } from 'vitest';
import { MrlError } from '../../src/errors.js';
import { loadOnnxRuntimeKernels, type NativeKernels } from '../../src/native/onnxruntime.js';

/** `kernels` as loaded; a test failure naming the fix when onnxruntime-node did not load. */
export function loaded(kernels: NativeKernels | undefined): NativeKernels {
  if (kernels === undefined) {
    throw new Error('onnxruntime-node did not load: run pnpm install (it is an optional dependency of @mrl/kernels).');
  }
  return kernels;
}

/** The native kernels with `options` (see {@link loaded}). */
export const nativeKernels = (options: Parameters<typeof loadOnnxRuntimeKernels>[0] = {}): NativeKernels =>
  loaded(loadOnnxRuntimeKernels(options));

/**
 * Where scripts/setup.sh builds the oneDNN addon (native/build.sh): Linux with Debian's libdnnl-dev
 * and librandom123-dev.
 */
export const ONEDNN_BUILDABLE =
  process.platform === 'linux' &&
  existsSync('/usr/include/oneapi/dnnl/dnnl.hpp') &&
  existsSync('/usr/include/Random123/philox.h');

/**
 * Runs `fn` with a fresh instance of the native-kernel module loaded under `MRL_ONEDNN=off`, as
 * where the addon is absent; the variable and the module registry are restored afterwards.
 */
export async function withOneDnnOff<T>(
  fn: (fresh: typeof import('../../src/native/onnxruntime.js')) => T | Promise<T>,
): Promise<T> {
  const saved = process.env['MRL_ONEDNN'];
  process.env['MRL_ONEDNN'] = 'off';
  try {
    vi.resetModules();
    return await fn(await import('../../src/native/onnxruntime.js'));
  } finally {
    if (saved === undefined) delete process.env['MRL_ONEDNN'];
    else process.env['MRL_ONEDNN'] = saved;
    vi.resetModules();
  }
}

/** `load` throws `message` as a 'backend-unavailable' MrlError whose fix names the packages to install. */
export function expectNeedsOneDnn(load: () => unknown, message: string): void {
  expect(load).toThrow(message);
  try {
    load();
    expect.unreachable();
  } catch (e) {
    expect(MrlError.is(e) && e.kind).toBe('backend-unavailable');
    expect(MrlError.is(e) && e.fix).toMatch(/apt-get install g\+\+ libdnnl-dev librandom123-dev/);
  }
}

/**
 * `native` with the named methods of its `part` (the addon's batch-norm, update or few-class head
 * kernels) counted when called, under a new detail so that registering replaces the kernels.
 */
export function countedNative<P extends 'batchNorm' | 'updates' | 'prefixCeFew'>(
  native: NativeKernels,
  label: string,
  part: P,
  methods: readonly (keyof NonNullable<NativeKernels[P]>)[],
): { native: NativeKernels; calls: () => number } {
  let calls = 0;
  const original = native[part] as unknown as Record<string, (...args: unknown[]) => unknown>;
  const wrapped: Record<string, unknown> = { ...original };
  for (const name of methods as readonly string[]) {
    const method = original[name]!;
    wrapped[name] = (...args: unknown[]) => {
      calls++;
      return method(...args);
    };
  }
  return { native: { ...native, detail: `${native.detail} (${label})`, [part]: wrapped }, calls: () => calls };
}

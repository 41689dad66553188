import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { initBackend, setModuleLoader } from '../src/backend.js';
import { MrlError } from '../src/errors.js';

// `webgpu` is an optional dependency: `pnpm install --no-optional` leaves it out. These tests make
// it absent through the module-loader seam, so they run whether or not it is installed here.

afterEach(() => setModuleLoader(undefined));

async function webgpuError(): Promise<MrlError> {
  const before = tf.getBackend();
  const error = await initBackend('webgpu').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(MrlError.is(error), `expected an MrlError, got ${String(error)}`).toBe(true);
  expect((error as MrlError).kind).toBe('backend-unavailable');
  expect(tf.getBackend()).toBe(before); // nothing switched
  return error as MrlError;
}

describe("--backend webgpu without the optional package 'webgpu'", () => {
  it('names the missing package and how to install it (Node resolution error)', async () => {
    await initBackend('cpu');
    setModuleLoader(async (specifier) => {
      const error = new Error(`Cannot find package '${specifier}' imported from /app/packages/kernels/dist/backend.js`);
      throw Object.assign(error, { code: 'ERR_MODULE_NOT_FOUND' });
    });
    const error = await webgpuError();
    expect(error.message).toBe(
      "--backend webgpu needs the npm package 'webgpu' (Dawn's WebGPU for Node), an optional dependency of @mrl/kernels that is not installed here.",
    );
    expect(error.fix).toBe(
      'Install it: pnpm add --filter @mrl/kernels webgpu@^0.6.2 (or run pnpm install without --no-optional; with npm: npm install webgpu@^0.6.2), or choose --backend wasm.',
    );
  });

  it('recognises the error this runtime really throws for a package that is not installed', async () => {
    await initBackend('cpu');
    // A real import of a name no package has: the error shape comes from the runtime, not from us.
    setModuleLoader((specifier) => import(/* @vite-ignore */ `${specifier}-not-installed-anywhere`));
    const error = await webgpuError();
    expect(error.message).toContain("needs the npm package 'webgpu'");
    expect(error.fix).toContain('pnpm add --filter @mrl/kernels webgpu@^0.6.2');
  });

  it('tells a package that fails to load apart from a missing one', async () => {
    await initBackend('cpu');
    setModuleLoader(async () => {
      throw new Error('libvulkan.so.1: cannot open shared object file: No such file or directory');
    });
    const error = await webgpuError();
    expect(error.message).toBe(
      "--backend webgpu could not load the npm package 'webgpu' (Dawn's WebGPU for Node): libvulkan.so.1: cannot open shared object file: No such file or directory.",
    );
    expect(error.fix).toBe('Reinstall it (pnpm install --force), or choose --backend wasm.');
  });
});

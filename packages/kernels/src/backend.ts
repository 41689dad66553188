import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { MrlError } from './errors.js';
import { registerWasmTrainingKernels } from './wasm/register.js';
import { loadOnnxRuntimeKernels, type NativeKernels } from './native/onnxruntime.js';
import { freeDuringBackward } from './memory/free-during-backward.js';

/** Backends mrl can run on. `tensorflow` needs `@tensorflow/tfjs-node-gpu` or `-node`, installed by the user. */
export const BACKEND_NAMES = ['wasm', 'cpu', 'webgpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * What runs the wasm backend's heavy kernels (matrix products, NHWC convolutions and their
 * gradients): `onnxruntime`, the native kernels of the optional `onnxruntime-node` (2-5x faster
 * than wasm SIMD); `wasm`, the backend's own XNNPACK plus our wasm kernels; or `auto`, the
 * native ones when they load.
 */
export const KERNEL_SOURCES = ['auto', 'onnxruntime', 'wasm'] as const;
export type KernelSource = (typeof KERNEL_SOURCES)[number];

export interface BackendOptions {
  /**
   * For `wasm`: what runs the heavy kernels. Default: `auto` at the first start; later calls
   * without it keep what is running.
   */
  kernels?: KernelSource;
  /**
   * For `wasm` with native kernels: threads of ONNX Runtime's pool for products and convolutions.
   * Default: every core this process may use (`os.availableParallelism()`). Results at a fixed
   * thread count are the same run after run.
   */
  threads?: number;
}

/** Cores this process may use: the default thread count. */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

export interface BackendInfo {
  name: BackendName;
  /** What the backend runs on, for the log line. */
  detail: string;
}

/** Loads an optional package by name; tests replace it to simulate a package that is absent. */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

// A computed specifier keeps bundlers and tsc from requiring the optional package.
const dynamicImport: ModuleLoader = (specifier) => import(/* @vite-ignore */ specifier);
let loadModule: ModuleLoader = dynamicImport;

/**
 * Replaces how optional packages (`webgpu`, `@tensorflow/tfjs-backend-webgpu`, tfjs-node) are
 * loaded, so tests can make one absent; `undefined` restores `import()`.
 */
export function setModuleLoader(loader: ModuleLoader | undefined): void {
  loadModule = loader ?? dynamicImport;
}

async function importOptional(specifier: string): Promise<unknown> {
  return loadModule(specifier);
}

/** Optional packages of the webgpu backend, with the version range @mrl/kernels declares. */
const WEBGPU_PACKAGES = [
  ['webgpu', '^0.6.2', "Dawn's WebGPU for Node"],
  ['@tensorflow/tfjs-backend-webgpu', '4.22.0', 'the TF.js WebGPU backend'],
] as const;

function isNotFound(cause: unknown, specifier: string): boolean {
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (package|module)/.test(message)) &&
    message.includes(specifier)
  );
}

/**
 * Loads one optional package of the webgpu backend, or throws one MrlError that names it and
 * says how to install it: `webgpu` (Dawn, 130 MB) is an optional dependency, skipped by
 * `pnpm install --no-optional` and by installs on platforms without a prebuilt binary.
 */
async function importWebgpuPackage(index: 0 | 1): Promise<unknown> {
  const [name, range, what] = WEBGPU_PACKAGES[index];
  try {
    return await importOptional(name);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const missing = isNotFound(cause, name);
    throw new MrlError(
      'backend-unavailable',
      missing
        ? `--backend webgpu needs the npm package '${name}' (${what}), an optional dependency of @mrl/kernels that is not installed here.`
        : `--backend webgpu could not load the npm package '${name}' (${what}): ${reason}.`,
      missing
        ? `Install it: pnpm add --filter @mrl/kernels ${name}@${range} (or run pnpm install without --no-optional; with npm: npm install ${name}@${range}), or choose --backend wasm.`
        : `Reinstall it (pnpm install --force), or choose --backend wasm.`,
      { cause },
    );
  }
}

async function activate(name: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    await tf.ready();
    // tfjs falls back silently when a backend fails to start: trust only getBackend().
    return ok && tf.getBackend() === name;
  } catch {
    return false;
  }
}

async function startWebgpu(): Promise<string> {
  const webgpu = (await importWebgpuPackage(0)) as {
    create: (options: string[]) => unknown;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]) as {
    requestAdapter(): Promise<{ info?: { description?: string; vendor?: string } } | null>;
  };
  const adapter = await gpu.requestAdapter();
  if (adapter === null) {
    throw new MrlError(
      'backend-unavailable',
      'WebGPU found no adapter: no Vulkan driver with the features Dawn needs is installed.',
      'Install a GPU driver with Vulkan (or Mesa 25 lavapipe for a software one), or choose --backend wasm.',
    );
  }
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  await importWebgpuPackage(1);
  if (!(await activate('webgpu'))) {
    throw new MrlError(
      'backend-unavailable',
      'the TF.js webgpu backend did not start on this adapter.',
      'Choose --backend wasm.',
    );
  }
  return adapter.info?.description ?? adapter.info?.vendor ?? 'WebGPU adapter';
}

async function startTensorflow(): Promise<string> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await importOptional(pkg);
    } catch {
      continue;
    }
    if (await activate('tensorflow')) return `libtensorflow via ${pkg}`;
  }
  throw new MrlError(
    'backend-unavailable',
    'the tensorflow backend needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node, and neither loads here.',
    'Install one of them (its install downloads libtensorflow), or choose --backend wasm.',
  );
}

/**
 * Starts a TF.js backend and checks that it really runs. `wasm` (the default) gets mrl's
 * training kernels registered; `cpu` is the slow reference.
 */
export async function initBackend(name: string = 'wasm', options: BackendOptions = {}): Promise<BackendInfo> {
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new MrlError(
      'backend-unavailable',
      `unknown backend '${name}'.`,
      `Choose one of: ${BACKEND_NAMES.join(', ')}.`,
    );
  }
  const source = options.kernels ?? 'auto';
  const threads = options.threads ?? current?.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new MrlError(
      'invalid-argument',
      `threads must be a positive integer, got ${String(options.threads)}.`,
      `Use a number from 1 to ${defaultThreads()} (the cores here), or leave it out for all of them.`,
    );
  }
  if (!(KERNEL_SOURCES as readonly string[]).includes(source)) {
    throw new MrlError(
      'invalid-argument',
      `unknown kernel source '${source}'.`,
      `Choose one of: ${KERNEL_SOURCES.join(', ')}.`,
    );
  }
  const backend = name as BackendName;
  // A second start of a device backend would open a second device beside the one TF.js holds
  // (Dawn then crashes); asking again for the active backend returns it as it is, and so does
  // asking without naming the kernels (a library call after the CLI chose them).
  if (
    current !== undefined &&
    current.backend === backend &&
    tf.getBackend() === backend &&
    (options.kernels === undefined || backend !== 'wasm' || current.source === source) &&
    (options.threads === undefined || current.threads === threads)
  ) {
    return current.info;
  }
  const info = await startBackend(backend, source, threads);
  freeDuringBackward(); // saved activations and gradients go as soon as the backward pass is past them
  current = { backend, source, info, threads };
  return info;
}

/** The backend started last, and with which kernels. */
let current: { backend: BackendName; source: KernelSource; info: BackendInfo; threads: number } | undefined;

/** The native kernels, loaded once per process and thread count (undefined: not installed here). */
let nativeKernels: NativeKernels | undefined | null = null;
let nativeThreads = 0;

function chooseNative(source: KernelSource, threads: number): NativeKernels | undefined {
  if (source === 'wasm') return undefined;
  if (nativeKernels === null || (nativeKernels !== undefined && nativeThreads !== threads)) {
    nativeKernels = loadOnnxRuntimeKernels({ threads });
    nativeThreads = threads;
  }
  if (nativeKernels === undefined && source === 'onnxruntime') {
    throw new MrlError(
      'backend-unavailable',
      "kernels 'onnxruntime' need the npm package 'onnxruntime-node', which does not load here.",
      'Install onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=skip skips its CUDA download), or choose --kernels wasm.',
    );
  }
  return nativeKernels;
}

async function startBackend(backend: BackendName, source: KernelSource, threads: number): Promise<BackendInfo> {
  switch (backend) {
    case 'wasm': {
      await import('@tensorflow/tfjs-backend-wasm');
      if (!(await activate('wasm'))) {
        throw new MrlError('backend-unavailable', 'the wasm backend did not start.', 'Choose --backend cpu.');
      }
      const native = chooseNative(source, threads);
      registerWasmTrainingKernels(native === undefined ? {} : { native });
      const heavy = native === undefined ? 'XNNPACK and mrl wasm kernels' : native.detail;
      return {
        name: backend,
        detail: `WebAssembly with mrl training kernels, 1 thread; products and convolutions on ${heavy}`,
      };
    }
    case 'cpu':
      if (!(await activate('cpu'))) throw new MrlError('backend-unavailable', 'the cpu backend did not start.');
      return { name: backend, detail: 'plain JavaScript reference backend' };
    case 'webgpu':
      return { name: backend, detail: await startWebgpu() };
    case 'tensorflow':
      return { name: backend, detail: await startTensorflow() };
  }
}

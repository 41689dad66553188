// Entry of the pack's bundle (bundle.mjs): hands the bundled copies of the optional webgpu
// packages to initBackend (which otherwise loads them by name from node_modules, absent in the
// pack), points the wasm backend at the .wasm files beside the bundle, then runs check.mjs.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setModuleLoader } from '@mrl/kernels';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const here = dirname(fileURLToPath(import.meta.url));
setWasmPaths(`${join(here, 'wasm')}/`);
setModuleLoader(async (specifier) => {
  if (specifier === 'webgpu') return import('webgpu');
  if (specifier === '@tensorflow/tfjs-backend-webgpu') return import('@tensorflow/tfjs-backend-webgpu');
  throw Object.assign(new Error(`Cannot find package '${specifier}': the GPU check pack holds only webgpu`), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
});
await import('./check.mjs');

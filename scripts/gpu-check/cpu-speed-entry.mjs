// Entry of the CPU speed pack's bundle (bundle.mjs --cpu): points the wasm backend at the .wasm
// files of the pack, then runs bench/speed.mjs with the command line as given. The bundle sits at
// app/dist/native/speed.mjs, as @mrl/kernels' dist/native/ files sit in their package, so that
// the kernels find the oneDNN addon at its usual relative path (app/native/build/onednn.node) and
// onnxruntime-node in app/node_modules.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const here = dirname(fileURLToPath(import.meta.url));
setWasmPaths(`${join(here, '..', '..', 'wasm')}/`);
await import('../../bench/speed.mjs');

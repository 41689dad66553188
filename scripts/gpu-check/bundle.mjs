// Bundles the GPU check (pack-entry.mjs -> check.mjs -> @mrl/core, vision and text models,
// TF.js, webgpu) into one ES module with rolldown, so the pack needs no node_modules: only the
// files Node cannot bundle travel beside it (Dawn's dawn.node for linux-x64, the wasm backend's
// .wasm files). Usage: node bundle.mjs OUT_DIR
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rolldown } from 'rolldown';

const out = process.argv[2];
if (out === undefined) {
  console.error('usage: node bundle.mjs OUT_DIR');
  process.exit(2);
}
await mkdir(out, { recursive: true });
const bundle = await rolldown({
  input: new URL('./pack-entry.mjs', import.meta.url).pathname,
  platform: 'node',
  // Loaded by the CLI only (image decoding, file formats); the check never calls it.
  external: ['sharp', 'onnxruntime-node'],
  logLevel: 'warn',
});
// The wasm backend's Emscripten glue reads __dirname, which an ES module does not have.
const banner = [
  "import { fileURLToPath as __mrlFileURLToPath } from 'node:url';",
  "import { dirname as __mrlDirname } from 'node:path';",
  'const __filename = __mrlFileURLToPath(import.meta.url);',
  'const __dirname = __mrlDirname(__filename);',
].join('\n');
await bundle.write({ file: join(out, 'check.mjs'), format: 'esm', minify: true, codeSplitting: false, banner });
await bundle.close();

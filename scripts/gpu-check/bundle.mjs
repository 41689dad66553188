// Bundles a pack's JavaScript into one ES module with rolldown, so the pack needs no node_modules
// for it: only the files Node cannot bundle travel beside it. Two packs (pack.sh):
//   gpu: pack-entry.mjs -> check.mjs -> @mrl/core, the vision and text models, TF.js, webgpu;
//        beside it Dawn's dawn.node for linux-x64 and the wasm backend's .wasm files.
//   cpu: cpu-speed-entry.mjs -> bench/speed.mjs (the same packages, no webgpu); beside it the
//        .wasm files, onnxruntime-node (loaded by path at run time, never bundled) and the oneDNN
//        addon.
// Usage: node bundle.mjs OUT_DIR [--cpu]     (writes OUT_DIR/check.mjs, or OUT_DIR/speed.mjs)
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rolldown } from 'rolldown';

const [out, kind = '--gpu'] = process.argv.slice(2);
if (out === undefined || out.startsWith('--') || !['--gpu', '--cpu'].includes(kind)) {
  console.error('usage: node bundle.mjs OUT_DIR [--gpu|--cpu]');
  process.exit(2);
}
const cpu = kind === '--cpu';
const SHARP_STAND_IN = '\0mrl-sharp-stand-in';
/** A module in place of the npm sharp package (libvips, 30 MB): the CPU pack decodes no images. */
const sharpStandIn = {
  name: 'mrl-sharp-stand-in',
  resolveId: (id) => (id === 'sharp' ? SHARP_STAND_IN : null),
  load: (id) =>
    id === SHARP_STAND_IN
      ? "export default function sharp() { throw new Error('sharp (image decoding) is not in the CPU speed pack: it trains on generated tensors only.'); }"
      : null,
};
await mkdir(out, { recursive: true });
const bundle = await rolldown({
  input: new URL(cpu ? './cpu-speed-entry.mjs' : './pack-entry.mjs', import.meta.url).pathname,
  platform: 'node',
  // sharp: image decoding for the CLI and the data loaders; neither pack calls it. The GPU
  // bundle leaves it out; bench/speed.mjs's imports keep a static `import sharp` (@mrl/vision's
  // data loaders), which Node would resolve at load time, so the CPU bundle gets a stand-in that
  // throws if it is ever called.
  // onnxruntime-node: @mrl/kernels finds it with createRequire at run time (the CPU pack carries
  // it as a package beside the bundle).
  external: cpu ? ['onnxruntime-node'] : ['sharp', 'onnxruntime-node'],
  plugins: cpu ? [sharpStandIn] : [],
  logLevel: 'warn',
});
// The wasm backend's Emscripten glue reads __dirname, which an ES module does not have.
const banner = [
  "import { fileURLToPath as __mrlFileURLToPath } from 'node:url';",
  "import { dirname as __mrlDirname } from 'node:path';",
  'const __filename = __mrlFileURLToPath(import.meta.url);',
  'const __dirname = __mrlDirname(__filename);',
].join('\n');
const file = join(out, cpu ? 'speed.mjs' : 'check.mjs');
await bundle.write({ file, format: 'esm', minify: true, codeSplitting: false, banner });
await bundle.close();

// One training epoch over an image folder on disk, decoded as the trainer asks for batches:
// images/s and peak RSS, at two folder sizes in the same run so that the RSS comparison says
// whether memory grows with the number of images (it must not: batches stream from disk).
//
//   node bench/image-folder-stream.mjs [--count 100000] [--small 10000] [--dir /tmp/mrl-stream] [--keep]
//
// The folder is generated here (10 classes of 32x32 PNGs: a class colour plus seeded noise, in
// several channel layouts) and reused by later runs when --dir already holds it. Each size trains
// in its own child process, so each peak RSS is that run's alone.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};

if (args[0] === '--child') {
  // Train one epoch over the first `count` images of the folder and print one JSON line.
  const [, dir, count] = args;
  const tf = await import('@tensorflow/tfjs');
  const {
    initBackend,
    MatryoshkaLoss,
    MatryoshkaModel,
    ClassificationObjective,
    SeparateHeads,
    MlpEncoder,
    Trainer,
    createRandom,
  } = await import('@mrl/core');
  const { openImageFolder, ImageFolderBatches } = await import('@mrl/vision');
  await initBackend('wasm');
  const t0 = performance.now();
  const full = await openImageFolder(dir);
  const n = Math.min(Number(count), full.count);
  // The first n files in a seeded order, so both sizes see every class.
  const order = [...Array(full.count).keys()].sort(
    (a, b) => ((a * 2654435761) % 2 ** 32) - ((b * 2654435761) % 2 ** 32),
  );
  const keep = order.slice(0, n).sort((a, b) => a - b);
  const folder = {
    ...full,
    files: keep.map((i) => full.files[i]),
    labels: Int32Array.from(keep, (i) => full.labels[i]),
    count: n,
  };
  const listMs = performance.now() - t0;
  const transform = { size: 32, channels: 3, crop: 'random-resized', scale: [0.35, 1], flip: true };
  const batches = new ImageFolderBatches(folder, transform, 0);
  const encoder = new MlpEncoder(
    { architecture: 'mlp', inputDim: 32 * 32 * 3, hidden: [256], embeddingDim: 64 },
    createRandom(0),
  );
  const head = new SeparateHeads(64, folder.numClasses, [8, 16, 32, 64], createRandom(1));
  const loss = new MatryoshkaLoss(new ClassificationObjective(head), { embeddingDim: 64 });
  const model = new MatryoshkaModel(encoder, loss);
  const trainer = new Trainer(model, batches, {
    epochs: 1,
    batchSize: 256,
    seed: 0,
    optimizer: { type: 'adamw', lr: 1e-3 },
  });
  const t1 = performance.now();
  const fit = await trainer.fit();
  const trainMs = performance.now() - t1;
  process.stdout.write(
    `${JSON.stringify({
      images: n,
      steps: fit.steps,
      listSeconds: listMs / 1000,
      trainSeconds: trainMs / 1000,
      imagesPerSecond: n / (trainMs / 1000),
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      finalLoss: fit.finalLoss,
      tensors: tf.memory().numTensors,
    })}\n`,
  );
  process.exit(0);
}

const count = Number(flag('count', '100000'));
const small = Number(flag('small', '10000'));
const dir = flag('dir', '/tmp/mrl-stream');

async function generate() {
  const sharp = (await import('sharp')).default;
  const existing = existsSync(dir)
    ? (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.png')).length
    : 0;
  if (existing >= count) return existing;
  await rm(dir, { recursive: true, force: true });
  const classes = 10;
  const t0 = performance.now();
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let c = 0; c < classes; c++) await mkdir(join(dir, `class-${c}`), { recursive: true });
  const jobs = [];
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    const pixels = Buffer.alloc(32 * 32 * 3);
    const base = [(c * 73) % 256, (c * 151) % 256, (c * 199) % 256];
    for (let p = 0; p < 32 * 32; p++)
      for (let k = 0; k < 3; k++) pixels[p * 3 + k] = Math.max(0, Math.min(255, base[k] + (random() - 0.5) * 160));
    let image = sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } });
    // Channel layouts users have: RGB, grey, RGBA.
    if (i % 3 === 1) image = image.greyscale();
    if (i % 3 === 2) image = image.ensureAlpha();
    jobs.push(
      image
        .png()
        .toBuffer()
        .then((buffer) => writeFile(join(dir, `class-${c}`, `${i}.png`), buffer)),
    );
    if (jobs.length >= 64) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  process.stderr.write(`generated ${count} PNGs in ${dir} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  return count;
}

await generate();
const self = fileURLToPath(import.meta.url);
const rows = [];
for (const n of [small, count]) {
  const r = spawnSync(process.execPath, [self, '--child', dir, String(n)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`child for ${n} images failed:\n${r.stderr}`);
  rows.push(JSON.parse(r.stdout.trim().split('\n').at(-1)));
}
const threads = 'wasm backend, 1 thread; sharp decodes on libuv threads';
console.log(
  `One epoch, MLP 3072-256-64 with Matryoshka heads 8..64, batch 256, random-resized crops + flips (${threads})`,
);
console.log('images   steps  list s  train s  images/s  peak RSS MiB');
for (const r of rows) {
  console.log(
    `${String(r.images).padStart(6)}  ${String(r.steps).padStart(6)}  ${r.listSeconds.toFixed(1).padStart(6)}  ${r.trainSeconds.toFixed(1).padStart(7)}  ${r.imagesPerSecond.toFixed(0).padStart(8)}  ${r.peakRssMiB.toFixed(0).padStart(12)}`,
  );
}
const [a, b] = rows;
console.log(
  `peak RSS at ${b.images} vs ${a.images} images: ${(b.peakRssMiB / a.peakRssMiB).toFixed(2)}x for ${(b.images / a.images).toFixed(0)}x the images; target: under 1.5 GB at ${b.images}: ${b.peakRssMiB < 1536 ? 'met' : 'NOT met'}`,
);
if (!args.includes('--keep') && !args.includes('--dir')) await rm(dir, { recursive: true, force: true });

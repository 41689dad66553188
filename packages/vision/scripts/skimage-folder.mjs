// Writes a user-style image folder from Debian's python3-skimage sample pictures, for the README's
// image-folder run: one class per picture, each image a random square crop of it, saved in the
// formats and channel layouts users have (grey, RGB, RGBA and palette PNG; JPEG).
//   node packages/vision/scripts/skimage-folder.mjs <dir> [per-class] [seed]
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const PICTURES = {
  astronaut: 'astronaut.png',
  brick: 'brick.png',
  camera: 'camera.png',
  chelsea: 'chelsea.png',
  coffee: 'coffee.png',
  coins: 'coins.png',
  grass: 'grass.png',
  gravel: 'gravel.png',
  horse: 'horse.png',
  rocket: 'rocket.jpg',
};

const dir = process.argv[2] ?? 'data/skimage-crops';
const perClass = Number(process.argv[3] ?? 120);
let state = Number(process.argv[4] ?? 1);
const random = () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state / 2 ** 31;
};
for (const [name, file] of Object.entries(PICTURES)) {
  const source = join(SKIMAGE, file);
  const meta = await sharp(source).metadata();
  await mkdir(join(dir, name), { recursive: true });
  for (let i = 0; i < perClass; i++) {
    const side = Math.floor(Math.min(meta.width, meta.height) * (0.2 + 0.3 * random()));
    const left = Math.floor((meta.width - side) * random());
    const top = Math.floor((meta.height - side) * random());
    const crop = sharp(source)
      .extract({ left, top, width: side, height: side })
      .resize(24 + (i % 4) * 16);
    const kind = i % 5;
    const out = join(dir, name, `${i}.${kind === 4 ? 'jpg' : 'png'}`);
    if (kind === 0) await crop.greyscale().png().toFile(out);
    else if (kind === 1) await crop.ensureAlpha().png().toFile(out);
    else if (kind === 2) await crop.png({ palette: true }).toFile(out);
    else if (kind === 3) await crop.toColourspace('srgb').png().toFile(out);
    else await crop.jpeg().toFile(out);
  }
}
console.log(`${dir}: ${Object.keys(PICTURES).length} classes x ${perClass} crops`);

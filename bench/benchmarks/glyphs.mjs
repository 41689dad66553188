// Writes a many-class glyph image folder from the fonts Debian installed (scripts/setup.sh lists the
// font packages): each class is one character (Latin, accented Latin, Greek, Cyrillic, digits,
// punctuation, currency, arrows, maths), each image one face drawn with a random affine transform,
// blur, contrast and noise. Train and test use disjoint font designs (metric clones such as
// Liberation Sans / Nimbus Sans / FreeSans count as one design), so the test set asks whether a
// model knows the character, not the font. Deterministic from --seed (given the same fonts).
//
//   node bench/benchmarks/glyphs.mjs --out /tmp/mrl-glyphs [--classes 300] [--size 32] [--seed 0]
//     [--faces-per-family 2] [--train-per-face 1] [--test-per-face 1] [--test-share 0.3]
//
// Layout: <out>/train/<class>/<face>-<k>.png, <out>/test/<class>/..., <out>/glyphs.json (classes,
// faces, split). Class folder names are the code point (u0041) so that every file system takes them.
// Characters are drawn with Pango through sharp's text input; a face whose description Pango does not
// resolve (it falls back to another font) is detected by its probe render and dropped.
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const out = flag('out', '/tmp/mrl-glyphs');
const numClasses = Number(flag('classes', '300'));
const size = Number(flag('size', '32'));
const seed = Number(flag('seed', '0'));
const facesPerFamily = Number(flag('faces-per-family', '2'));
const trainPerFace = Number(flag('train-per-face', '1'));
const testPerFace = Number(flag('test-per-face', '1'));
const testShare = Number(flag('test-share', '0.3'));
const minCoverage = Number(flag('min-coverage', '0.9'));
const t0 = performance.now();

// --- seeded randomness ------------------------------------------------------------------------
const hashString = (s) => {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
};
const mulberry32 = (a) => () => {
  a = (a + 0x6d2b79f5) | 0;
  let t = Math.imul(a ^ (a >>> 15), 1 | a);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const shuffled = (items, key) => {
  const rand = mulberry32(hashString(key));
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};
const normal = (rand) => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

// --- candidate characters -----------------------------------------------------------------------
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => String.fromCodePoint(from + i));
// Shapes that another candidate draws identically (Greek/Cyrillic capitals shared with Latin, l/I/1,
// O/0) or that differ only in size at a random scale (c/C, o/O, ...) are left out: the label must be
// decidable from the image.
const confusable = new Set([...'cosvwxzlI0|', ...'ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοςνκι', ...'АВЕКМНОРСТХУЅІЈаеорсухѕіјкптшвмнгдЗ']);
const pool = [
  ...range(0x41, 0x5a), // A-Z
  ...range(0x61, 0x7a), // a-z
  ...range(0x30, 0x39), // digits
  ...'!"#$%&\'()*+/<=>?@[\\]^{}~§¶©®°±µ¿×÷£¥¢€',
  ...range(0xc0, 0xff).filter((c) => c !== '×' && c !== '÷'), // Latin-1 letters
  ...range(0x100, 0x17f), // Latin Extended-A
  ...range(0x391, 0x3a9), // Greek capitals
  ...range(0x3b1, 0x3c9), // Greek small
  ...range(0x410, 0x44f), // Cyrillic
  ...'ЁёЂЃЄЉЊЋЌЎЏђѓєљњћќўџҐґ',
  ...'←↑→↓↔↕⇐⇒⇔∀∂∃∅∇∈∉∋∏∑−√∝∞∠∧∨∩∪∫≈≠≡≤≥⊂⊃⊆⊇⊕⊗⊥⋅⌐■□▲►▼◄○●◊♠♣♥♦♪♫☺☼',
].filter((c) => !confusable.has(c));

// --- fonts ----------------------------------------------------------------------------------------
const excluded =
  /^(STIX(Size|Integrals|NonUnicode|Variants|.*Math)|Standard Symbols|D050000L|DejaVu Math|Linux Libertine (Initials|Keyboard|Display)|Linux Biolinum Keyboard|cm|msam|msbm|esint|eufm|rsfs|stmary|wasy|dsrom|Go Smallcaps|Z003)/;
// Metric clones of one design share a group, so a design never sits on both sides of the split.
const designGroup = (family) => {
  if (/^(Liberation Sans|Nimbus Sans|FreeSans|Arimo)/.test(family)) return 'helvetica';
  if (/^(Liberation Serif|Nimbus Roman|FreeSerif|STIX|Tinos)/.test(family)) return 'times';
  if (/^(Liberation Mono|Nimbus Mono|FreeMono|Cousine)/.test(family)) return 'courier';
  if (/^(DejaVu|Hack|Bitstream Vera)/.test(family)) return 'dejavu';
  return family.split(' ')[0];
};
const parseCharset = (text) => {
  const set = new Set();
  for (const part of text.trim().split(/\s+/)) {
    if (part === '') continue;
    const [a, b] = part.split('-').map((h) => Number.parseInt(h, 16));
    for (let c = a; c <= (b ?? a); c++) set.add(c);
  }
  return set;
};
// Pango reads "Family, Weight Style Stretch"; fontconfig gives numbers for each.
const pangoWeight = (w) =>
  w <= 0
    ? 'Thin'
    : w <= 40
      ? 'Ultra-Light'
      : w <= 50
        ? 'Light'
        : w <= 55
          ? 'Semi-Light'
          : w <= 75
            ? 'Book'
            : w <= 80
              ? ''
              : w <= 100
                ? 'Medium'
                : w <= 180
                  ? 'Semi-Bold'
                  : w <= 200
                    ? 'Bold'
                    : w <= 205
                      ? 'Ultra-Bold'
                      : 'Heavy';
const pangoSlant = (s) => (s >= 110 ? 'Oblique' : s >= 100 ? 'Italic' : '');
const pangoWidth = (w) =>
  w <= 63 ? 'Extra-Condensed' : w <= 75 ? 'Condensed' : w <= 87 ? 'Semi-Condensed' : w <= 100 ? '' : 'Semi-Expanded';

const listing = execFileSync(
  'fc-list',
  ['--format', '%{file}\t%{family[0]}\t%{style[0]}\t%{weight}\t%{slant}\t%{width}\t%{fontformat}\t%{charset}\n'],
  { encoding: 'utf8', maxBuffer: 64 << 20 },
);
const faces = [];
const seen = new Set();
for (const line of listing.split('\n')) {
  const [file, family, style, weight, slant, width, format, charset] = line.split('\t');
  if (file === undefined || charset === undefined || format === 'Type 1' || excluded.test(family)) continue;
  const description = `${family}, ${[pangoWeight(Number(weight)), pangoSlant(Number(slant)), pangoWidth(Number(width))].filter(Boolean).join(' ')}`;
  if (seen.has(description)) continue;
  seen.add(description);
  faces.push({ file, family, style, description, group: designGroup(family), charset: parseCharset(charset) });
}
faces.sort((a, b) => (a.description < b.description ? -1 : 1));

// Draws one string with a face: a grey ink mask as tall as the face's line (an invisible strut,
// 'Ĺg' at alpha 1/65535, holds the ascent and descent: sharp crops a text image to its ink), cropped
// horizontally to the ink, so that '=' stays small and mid-height and 'g' keeps its descender.
const DPI = 180;
const render = async (text, description) => {
  const markup = `<span alpha="1">Ĺg</span>${text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}`;
  const { data, info } = await sharp({ text: { text: markup, font: description, dpi: DPI } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  let left = width;
  let right = -1;
  for (let x = 0; x < width; x++)
    for (let y = 0; y < height; y++)
      if (data[(y * width + x) * channels] > 0) {
        left = Math.min(left, x);
        right = Math.max(right, x);
        break;
      }
  if (right < 0) return undefined;
  const w = right - left + 1;
  const cropped = Buffer.alloc(w * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < w; x++) cropped[y * w + x] = data[(y * width + left + x) * channels];
  return { data: cropped, width: w, height, channels: 1 };
};
const digest = (r) => {
  let h = 2166136261;
  for (let i = 0; i < r.data.length; i += r.channels) h = Math.imul(h ^ r.data[i], 16777619);
  return `${r.width}x${r.height}:${h >>> 0}`;
};
// Pango falls back to its default font for an unknown description: a face whose probe render equals
// another face's (or the fallback's) did not resolve and is dropped.
const probe = 'Rag&Жλ';
const fallback = digest(await render(probe, 'No Such Family'));
const byDigest = new Map();
const usable = [];
for (const face of faces) {
  const d = digest(await render(probe, face.description));
  if (d === fallback && !/^DejaVu Sans, ?$/.test(face.description)) continue;
  if (byDigest.has(d)) continue;
  byDigest.set(d, face);
  usable.push(face);
}
// At most --faces-per-family faces of each family, picked by the seed (regular first when present).
const perFamily = new Map();
for (const face of shuffled(usable, 'faces')) {
  const list = perFamily.get(face.family) ?? [];
  list.push(face);
  perFamily.set(face.family, list);
}
const chosen = [...perFamily.values()]
  .flatMap((list) =>
    list
      .sort((a, b) => Number(b.description.endsWith(', ')) - Number(a.description.endsWith(', ')))
      .slice(0, facesPerFamily),
  )
  .sort((a, b) => (a.description < b.description ? -1 : 1));

// Test designs: whole groups in seeded order until they hold --test-share of the faces.
const groups = [...new Set(chosen.map((f) => f.group))].sort();
const testGroups = new Set();
let testFaces = 0;
for (const g of shuffled(groups, 'split')) {
  if (testFaces >= testShare * chosen.length) break;
  testGroups.add(g);
  testFaces += chosen.filter((f) => f.group === g).length;
}
for (const f of chosen) f.split = testGroups.has(f.group) ? 'test' : 'train';

// Classes: candidates that at least --min-coverage of the train faces and of the test faces cover.
const coverage = (c, split) => {
  const list = chosen.filter((f) => f.split === split);
  return list.filter((f) => f.charset.has(c.codePointAt(0))).length / list.length;
};
const eligible = pool.filter((c) => coverage(c, 'train') >= minCoverage && coverage(c, 'test') >= minCoverage);
if (eligible.length < numClasses) {
  console.log(`note: only ${eligible.length} characters are covered by ${minCoverage * 100}% of the faces; using all`);
}
const classes = shuffled(eligible, 'classes')
  .slice(0, numClasses)
  .sort((a, b) => a.codePointAt(0) - b.codePointAt(0));
const className = (c) => `u${c.codePointAt(0).toString(16).padStart(4, '0')}`;

// --- drawing ------------------------------------------------------------------------------------
// The glyph's line box (height H) maps to ~1.15 of the image (accents above capitals may clip); a random affine map (rotation, scale,
// shear, shift), a Gaussian blur, random ink/paper greys and Gaussian noise follow.
const blur = (img, sigma) => {
  if (sigma < 0.3) return img;
  const r = Math.ceil(2.5 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  const pass = (src, dx, dy) => {
    const dst = new Float32Array(size * size);
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const xx = Math.min(size - 1, Math.max(0, x + i * dx));
          const yy = Math.min(size - 1, Math.max(0, y + i * dy));
          acc += k[i + r] * src[yy * size + xx];
        }
        dst[y * size + x] = acc / sum;
      }
    return dst;
  };
  return pass(pass(img, 1, 0), 0, 1);
};
const draw = (glyph, rand) => {
  const { data, width, height, channels } = glyph;
  const scale = (1.15 * size) / height / (0.85 + 0.3 * rand());
  const angle = ((rand() - 0.5) * 2 * 12 * Math.PI) / 180;
  const shear = (rand() - 0.5) * 0.3;
  const sx = 1 + (rand() - 0.5) * 0.2;
  const tx = (rand() - 0.5) * 0.12 * size;
  const ty = (rand() - 0.5) * 0.12 * size;
  // Forward map source (centred, source pixels) -> output (centred): A = R * Shear * diag(sx, 1) * scale.
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const a = [cos * sx * scale, (cos * shear - sin) * scale, sin * sx * scale, (sin * shear + cos) * scale];
  const det = a[0] * a[3] - a[1] * a[2];
  const inv = [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det];
  const ink = new Float32Array(size * size);
  const at = (x, y) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : data[(y * width + x) * channels] / 255);
  for (let v = 0; v < size; v++)
    for (let u = 0; u < size; u++) {
      const ox = u + 0.5 - size / 2 - tx;
      const oy = v + 0.5 - size / 2 - ty;
      const x = inv[0] * ox + inv[1] * oy + width / 2 - 0.5;
      const y = inv[2] * ox + inv[3] * oy + height / 2 - 0.5;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const fx = x - x0;
      const fy = y - y0;
      ink[v * size + u] =
        (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
        fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
    }
  const blurred = blur(ink, rand() * 1.2);
  const paper = 200 + 55 * rand();
  const inkGrey = 70 * rand();
  const noise = 4 + 14 * rand();
  const pixels = Buffer.alloc(size * size);
  for (let i = 0; i < pixels.length; i++) {
    const value = paper + (inkGrey - paper) * Math.min(1, blurred[i]) + noise * normal(rand);
    pixels[i] = Math.max(0, Math.min(255, Math.round(value)));
  }
  return pixels;
};

await rm(out, { recursive: true, force: true });
for (const split of ['train', 'test'])
  for (const c of classes) await mkdir(join(out, split, className(c)), { recursive: true });
const counts = { train: 0, test: 0 };
for (const [fi, face] of chosen.entries()) {
  const per = face.split === 'train' ? trainPerFace : testPerFace;
  for (const c of classes) {
    if (!face.charset.has(c.codePointAt(0))) continue;
    // A face can list a character whose glyph draws nothing; that face skips the character.
    const glyph = await render(c, face.description).catch(() => undefined);
    if (glyph === undefined) continue;
    for (let k = 0; k < per; k++) {
      const rand = mulberry32(hashString(`${face.description}|${c}|${k}`));
      const png = await sharp(draw(glyph, rand), { raw: { width: size, height: size, channels: 1 } })
        .png()
        .toBuffer();
      await writeFile(join(out, face.split, className(c), `f${String(fi).padStart(3, '0')}-${k}.png`), png);
      counts[face.split]++;
    }
  }
}
const manifest = {
  seed,
  size,
  classes: classes.map((c) => ({ name: className(c), char: c })),
  faces: chosen.map((f) => ({ description: f.description, file: f.file, group: f.group, split: f.split })),
  counts,
};
await writeFile(join(out, 'glyphs.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const nTrain = chosen.filter((f) => f.split === 'train').length;
console.log(
  `${classes.length} classes (of ${eligible.length} eligible), ${chosen.length} faces (${nTrain} train / ${chosen.length - nTrain} test, ${groups.length} designs, ${usable.length} resolvable), ${counts.train} train / ${counts.test} test images of ${size}x${size} in ${out}, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
console.log(`test designs: ${[...testGroups].sort().join(', ')}`);

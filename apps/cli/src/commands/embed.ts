import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import {
  applyAdaptor,
  embedDataset,
  initBackend,
  loadAdaptor,
  MrlError,
  truncateAndNormalize,
  writeFileAtomically,
  writeSafetensors,
} from '@mrl/core';
import { encodeImages, encodeTexts, loadAlignRun, readImages } from '@mrl/align';
import { encode, loadTextModel, readRecords, textOf } from '@mrl/text';
import { decodeImages, IMAGE_EXTENSIONS, loadVisionData, type ImageTransform } from '@mrl/vision';
import * as tf from '@tensorflow/tfjs';
import { adaptiveApi as api } from '../adaptive.js';
import { defineMrlCommand } from '../command.js';
import {
  ADAPTOR_FLAG,
  BACKEND_FLAGS,
  COMMON_FLAGS,
  DATA_FLAGS,
  EMBED_FLAGS,
  RUN_DIR_FLAG,
  TRUST_FLAGS,
  type Resolved,
} from '../flags.js';
import { loadModel } from '../model-io.js';
import { writeNpy } from '../npy.js';
import { buildRegistry } from '../registry.js';
import { readRunConfig, requireRunDir } from '../run-folder.js';
import { displayPath } from '../run-folder.js';
import { assertFiniteRows } from '../finite.js';
import { checkEmbedFlags, trustedRunFlags } from '../run-guard.js';
import { acquireRunLock } from '../run-lock.js';

const FORMATS = ['npy', 'safetensors', 'index', 'jsonl'] as const;

/** Images named by --input: a folder (recursively), one image, a .txt list of paths, or '-' (stdin). */
async function listImageInputs(input: string): Promise<{ id: string; path: string }[]> {
  const isImage = (p: string): boolean => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase());
  const fromList = (text: string, base: string, where: string): { id: string; path: string }[] =>
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .map((l, i) => {
        const path = resolve(base, l);
        if (!existsSync(path)) {
          throw new MrlError(
            'missing-file',
            `${where}:${i + 1}: the image ${l} does not exist (looked for ${path}).`,
            'List one existing image path per line (relative paths are relative to the list).',
          );
        }
        return { id: l, path };
      });
  if (input === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return fromList(Buffer.concat(chunks).toString('utf8'), process.cwd(), 'standard input');
  }
  const path = resolve(input);
  if (!existsSync(path)) {
    throw new MrlError(
      'missing-file',
      `--input ${input} does not exist.`,
      'Pass an image folder, an image, or a .txt list of paths.',
    );
  }
  if ((await stat(path)).isDirectory()) {
    const files = (await readdir(path, { recursive: true })).filter(isImage).sort();
    if (files.length === 0) {
      throw new MrlError(
        'invalid-argument',
        `--input ${input} holds no images (${IMAGE_EXTENSIONS.join(' ')}).`,
        'Point --input at a folder of images.',
      );
    }
    return files.map((f) => ({ id: f, path: join(path, f) }));
  }
  if (extname(path).toLowerCase() === '.txt') return fromList(await readFile(path, 'utf8'), dirname(path), input);
  if (!isImage(path)) {
    throw new MrlError(
      'invalid-argument',
      `--input ${input} is neither an image (${IMAGE_EXTENSIONS.join(' ')}), a folder, nor a .txt list of paths.`,
      'Pass an image folder, an image, or a .txt list of paths.',
    );
  }
  return [{ id: input, path }];
}

/** How the run's images became model inputs (labels.json), so new images are decoded the same way. */
async function runTransform(runDir: string, data: string | undefined): Promise<ImageTransform> {
  const path = join(runDir, 'labels.json');
  if (existsSync(path)) {
    const saved = JSON.parse(await readFile(path, 'utf8')) as { transform?: ImageTransform };
    if (saved.transform !== undefined) return saved.transform;
  }
  if (data === undefined || data === 'fashion-mnist') return { size: 28, channels: 1, crop: 'resize' };
  throw new MrlError(
    'corrupt-file',
    `${path} does not say how the run's images were decoded.`,
    'Run mrl-cli fit again for this run folder.',
  );
}

const FLAGS = {
  ...RUN_DIR_FLAG,
  ...TRUST_FLAGS,
  ...EMBED_FLAGS,
  ...DATA_FLAGS,
  ...BACKEND_FLAGS,
  ...COMMON_FLAGS,
  ...ADAPTOR_FLAG,
};
type EmbedOptions = Resolved<typeof FLAGS>;

/** Full-d embeddings of what `embed` was asked for, before the prefix is kept. */
interface Embedded {
  full: Float32Array;
  count: number;
  d: number;
  architecture: string;
  labels?: Int32Array;
  ids?: string[];
  what: string;
}

/** A vision run: a split of its data, or the images named by --input. */
async function embedImages(
  runDir: string,
  runFlags: Record<string, unknown>,
  options: EmbedOptions,
): Promise<Embedded> {
  // New inputs are listed before the model loads: a missing path fails fast.
  const inputs = options.input === undefined ? undefined : await listImageInputs(options.input);
  const registry = await buildRegistry(options.plugin);
  await initBackend(options.backend, {
    kernels: options.kernels,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  const encoder = await loadModel(join(runDir, 'model'), registry);
  const d = encoder.embeddingDim;
  if (options.dim !== undefined && (options.dim < 1 || options.dim > d)) {
    throw new MrlError(
      'invalid-argument',
      options.dim < 1
        ? `--dim must be at least 1, got ${options.dim}.`
        : `--dim ${options.dim} is larger than the model's embedding dim d = ${d}.`,
      `Use --dim between 1 and ${d}; Matryoshka prefixes are the first dims of the d-dim embedding.`,
    );
  }
  await acquireRunLock(runDir, 'embed');
  let count: number;
  let full: { data: Float32Array };
  let labels: Int32Array | undefined;
  let ids: string[] | undefined;
  let what: string;
  if (inputs !== undefined) {
    const transform = await runTransform(runDir, options.data);
    count = Math.min(inputs.length, options.limit ?? inputs.length);
    ids = inputs.slice(0, count).map((f) => f.id);
    const files = inputs.slice(0, count).map((f) => f.path);
    full = await embedDataset(encoder, count, async (indices) => {
      const pixels = await decodeImages(files, indices, transform);
      return tf.tensor(pixels, [indices.length, transform.size, transform.size, transform.channels]);
    });
    what = `${count} images from ${options.input === '-' ? 'standard input' : displayPath(resolve(options.input!))}`;
  } else {
    const data = await loadVisionData({
      data: options.data ?? 'fashion-mnist',
      ...(options['data-dir'] === undefined ? {} : { dataDir: options['data-dir'] }),
      ...(typeof runFlags['image-size'] === 'number' ? { imageSize: runFlags['image-size'] } : {}),
      ...(runFlags.channels === 1 || runFlags.channels === 3 ? { channels: runFlags.channels } : {}),
      ...(typeof runFlags['test-fraction'] === 'number' ? { testFraction: runFlags['test-fraction'] } : {}),
      // An image folder's train split is otherwise a 10,000-image sample (what fit's 1-NN searches):
      // embed decodes all of it, or the first --limit.
      ...(options.split === 'train' ? { evalTrainLimit: options.limit ?? Number.POSITIVE_INFINITY } : {}),
      augment: false,
    });
    const split = options.split === 'train' ? data.train : data.test;
    count = Math.min(split.count, options.limit ?? split.count);
    const size = split.exampleShape.reduce((a, b) => a * b, 1);
    full = await embedDataset(encoder, count, (indices) => {
      const out = new Float32Array(indices.length * size);
      indices.forEach((row, i) => out.set(split.inputs.subarray(row * size, (row + 1) * size), i * size));
      return tf.tensor(out, [indices.length, ...split.exampleShape]);
    });
    labels = Int32Array.from(split.labels.subarray(0, count));
    what = `${count} ${options.split} examples`;
  }
  const architecture = String(encoder.config.architecture);
  encoder.dispose();
  return {
    full: full.data,
    count,
    d,
    architecture,
    ...(labels === undefined ? {} : { labels }),
    ...(ids === undefined ? {} : { ids }),
    what,
  };
}

/**
 * Texts named by --input: a .txt (one a line), .jsonl (field "text", "id" optional), .csv or .tsv
 * (a "text" column) streamed record by record with text's `readRecords` (UTF-8 and fields checked,
 * errors naming file and line), or '-' (standard input, one text a line). Ids are line numbers
 * unless a record has an "id".
 */
async function readTextInputs(input: string): Promise<{ id: string; text: string }[]> {
  const out: { id: string; text: string }[] = [];
  if (input === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    Buffer.concat(chunks)
      .toString('utf8')
      .split(/\r?\n/)
      .forEach((line, i) => {
        if (line.trim() !== '') out.push({ id: String(i + 1), text: line });
      });
  } else {
    const path = resolve(input);
    if (!existsSync(path)) {
      throw new MrlError(
        'missing-file',
        `cannot read --input ${input}: it does not exist.`,
        'Pass a .txt file (one text a line), a .jsonl file ({"text": ...} a line) or - for standard input.',
      );
    }
    for await (const { fields, line } of readRecords(path)) {
      const text = textOf(fields, 'text', { path: input, line }, { option: 'the field name (embed reads "text")' });
      out.push({ id: fields.id === undefined ? String(line) : String(fields.id), text });
    }
  }
  const where = input === '-' ? 'standard input' : input;
  if (out.length === 0)
    throw new MrlError('invalid-argument', `--input ${where} holds no text.`, 'Give one text a line.');
  return out;
}

/** A text run: the texts named by --input, through the run's trained encoder. */
async function embedTextInputs(runDir: string, options: EmbedOptions): Promise<Embedded> {
  if (options.input === undefined) {
    throw new MrlError(
      'invalid-argument',
      'a text run embeds the texts you give it: --input is missing.',
      'Pass --input texts.txt (one text a line), texts.jsonl ({"text": ..., "id": ...} a line) or - for standard input.',
    );
  }
  const inputs = await readTextInputs(options.input);
  await initBackend(options.backend, {
    kernels: options.kernels,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  const model = await loadTextModel(runDir);
  await acquireRunLock(runDir, 'embed');
  const count = Math.min(inputs.length, options.limit ?? inputs.length);
  const texts = inputs.slice(0, count);
  const encoded = await encode(
    model,
    texts.map((t) => t.text),
    { normalize: false },
  );
  const d = model.encoder.embeddingDim;
  model.dispose();
  return {
    full: encoded.data as Float32Array,
    count,
    d,
    architecture: 'bert',
    ids: texts.map((t) => t.id),
    what: `${count} texts from ${options.input === '-' ? 'standard input' : displayPath(resolve(options.input))}`,
  };
}

/** Whether an align run's --input holds texts (.txt, .jsonl, standard input) rather than images. */
function isTextInput(input: string): boolean {
  return input === '-' || ['.txt', '.jsonl', '.csv', '.tsv'].includes(extname(input).toLowerCase());
}

/**
 * An align run: images (a folder, or one image) through the image tower, texts (.txt one a line,
 * .jsonl, or '-') through the text tower, into the one shared space.
 */
async function embedAlignInputs(runDir: string, options: EmbedOptions): Promise<Embedded> {
  if (options.input === undefined) {
    throw new MrlError(
      'invalid-argument',
      'an align run embeds the images or texts you give it: --input is missing.',
      'Pass --input a folder of images (image tower), or texts.txt / texts.jsonl / - (text tower).',
    );
  }
  const input = options.input;
  const texts = isTextInput(input) ? await readTextInputs(input) : undefined;
  const images = texts === undefined ? await listImageInputs(input) : undefined;
  await initBackend(options.backend, {
    kernels: options.kernels,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  const model = await loadAlignRun(runDir);
  await acquireRunLock(runDir, 'embed');
  const count = Math.min((texts ?? images)!.length, options.limit ?? (texts ?? images)!.length);
  const ids = (texts ?? images)!.slice(0, count).map((x) => x.id);
  const encoded =
    texts !== undefined
      ? await encodeTexts(
          model,
          texts.slice(0, count).map((t) => t.text),
          { normalize: false },
        )
      : await encodeImages(
          model,
          await readImages(
            images!.slice(0, count).map((f) => f.path),
            model.imageSize,
          ),
          { normalize: false },
        );
  const d = model.encoder.embeddingDim;
  const architecture = `${String(model.encoder.config.architecture)} (${texts === undefined ? 'image' : 'text'} tower)`;
  model.dispose();
  const from = input === '-' ? 'standard input' : displayPath(resolve(input));
  return {
    full: encoded.data as Float32Array,
    count,
    d,
    architecture,
    ids,
    what: `${count} ${texts === undefined ? 'images' : 'texts'} from ${from}`,
  };
}

export const embedCommand = defineMrlCommand({
  name: 'embed',
  description:
    'Embed a data split with the trained model of a run, keep the first --dim dims and renormalise, and write <out>.npy (+ <out>.labels.npy), <out>.safetensors (embeddings, labels) and <out>.mrlidx (a search index for mrl-cli search).',
  examples: [
    'mrl-cli embed --run-dir runs/vision-mlp --split train --dim 32',
    'mrl-cli embed --run-dir runs/vision-mlp --split test --limit 1000 --out out/queries --formats npy,safetensors',
    'mrl-cli embed --run-dir runs/align --input photos/ --dim 16 && mrl-cli embed --run-dir runs/align --input captions.txt --dim 16',
    'python3 -c "import numpy; print(numpy.load(\'out/queries.npy\').shape)"',
  ],
  flags: FLAGS,
  // The run's data settings and plug-ins are the defaults.
  async base(args) {
    if (typeof args['run-dir'] !== 'string') return {};
    const pick = ['modality', 'data', 'data-dir', 'plugin', 'backend', 'kernels'];
    return trustedRunFlags(resolve(args['run-dir']), args, pick);
  },
  async run(options) {
    const runDir = resolve(requireRunDir(options['run-dir'], 'embed'));
    checkEmbedFlags(options);
    const formats = options.formats
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const f of formats) {
      if (!(FORMATS as readonly string[]).includes(f))
        throw new MrlError(
          'invalid-argument',
          `--formats '${f}' is not a known format.`,
          `Use a comma-separated list of ${FORMATS.join(', ')}.`,
        );
    }
    if (options.limit !== undefined && options.limit < 1) {
      throw new MrlError(
        'invalid-argument',
        `--limit must be at least 1, got ${options.limit}.`,
        'Leave it out to embed all.',
      );
    }
    const runFlags = (await readRunConfig(runDir))?.flags ?? {};
    const embedded =
      options.modality === 'text'
        ? await embedTextInputs(runDir, options)
        : options.modality === 'align'
          ? await embedAlignInputs(runDir, options)
          : await embedImages(runDir, runFlags, options);
    const { full, count, d, labels, ids, what } = embedded;
    const m = options.dim ?? d;
    if (!Number.isInteger(m) || m < 1 || m > d) {
      throw new MrlError(
        'invalid-argument',
        m < 1 ? `--dim must be at least 1, got ${m}.` : `--dim ${m} is larger than the model's embedding dim d = ${d}.`,
        `Use --dim between 1 and ${d}; Matryoshka prefixes are the first dims of the d-dim embedding.`,
      );
    }
    assertFiniteRows(full, count, d, join(runDir, 'model'), 'embedding');
    // With --adaptor, the Matryoshka-Adaptor maps the full embeddings before truncation. It was
    // trained on what this command writes (unit-norm rows), so it gets unit-norm rows.
    const mapped =
      options.adaptor === undefined
        ? full
        : applyAdaptor(
            await loadAdaptor(resolve(options.adaptor)),
            { data: truncateAndNormalize(full, count, d, d), rows: count, dim: d },
            'the embeddings',
          ).data;
    const embeddings = truncateAndNormalize(mapped, count, d, m);
    const name = options.input === undefined ? options.split : 'input';
    const out = resolve(options.out ?? join(runDir, 'embeddings', `${name}-d${m}`));
    await mkdir(dirname(out), { recursive: true });
    const written: string[] = [];
    if (formats.includes('npy')) {
      await writeNpy(`${out}.npy`, embeddings, [count, m]);
      written.push(`${out}.npy`);
      if (labels !== undefined) {
        await writeNpy(`${out}.labels.npy`, labels, [count]);
        written.push(`${out}.labels.npy`);
      }
    }
    const metadata = {
      model: embedded.architecture,
      dim: String(m),
      modelDim: String(d),
      ...(options.input === undefined
        ? { split: options.split, data: options.data ?? 'fashion-mnist' }
        : { input: options.input }),
      normalized: 'l2',
      ...(options.adaptor === undefined ? {} : { adaptor: resolve(options.adaptor) }),
    };
    if (formats.includes('safetensors')) {
      await writeSafetensors(
        `${out}.safetensors`,
        new Map<string, { shape: number[]; data: Float32Array | Int32Array }>([
          ['embeddings', { shape: [count, m], data: embeddings }],
          ...(labels === undefined
            ? []
            : [['labels', { shape: [count], data: labels }] as [string, { shape: number[]; data: Int32Array }]]),
        ]),
        metadata,
      );
      written.push(`${out}.safetensors`);
    }
    if (formats.includes('jsonl')) {
      const lines: string[] = [];
      for (let r = 0; r < count; r++) {
        const id = ids?.[r] ?? String(r);
        const vector = Array.from(embeddings.subarray(r * m, (r + 1) * m), (v) => Number(v.toPrecision(7)));
        lines.push(JSON.stringify({ id, ...(labels === undefined ? {} : { label: labels[r] }), embedding: vector }));
      }
      await writeFileAtomically(`${out}.jsonl`, `${lines.join('\n')}\n`);
      written.push(`${out}.jsonl`);
    }
    if (formats.includes('index')) {
      const index = api.MatryoshkaIndex.fromVectors(embeddings, {
        dim: m,
        ...(labels === undefined ? {} : { labels }),
        metadata,
      });
      api.saveIndex(index, `${out}.mrlidx`);
      written.push(`${out}.mrlidx`);
    }
    process.stdout.write(
      `embedded ${what}, d=${d} -> ${m} dims (L2-normalised)\n${written.map((w) => `  ${displayPath(w)}`).join('\n')}\n`,
    );
  },
});

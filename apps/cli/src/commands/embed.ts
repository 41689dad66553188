import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { applyAdaptor, embedDataset, initBackend, loadAdaptor, MrlError, writeSafetensors } from '@mrl/core';
import { loadFashionMnist } from '@mrl/vision';
import * as tf from '@tensorflow/tfjs';
import { adaptiveApi, requireAdaptiveApi } from '../adaptive.js';
import { defineMrlCommand } from '../command.js';
import { ADAPTOR_FLAG, BACKEND_FLAGS, COMMON_FLAGS, DATA_FLAGS, EMBED_FLAGS, RUN_DIR_FLAG } from '../flags.js';
import { loadModel } from '../model-io.js';
import { writeNpy } from '../npy.js';
import { buildRegistry } from '../registry.js';
import { readRunConfig, requireRunDir } from '../run-folder.js';
import { displayPath } from '../run-folder.js';

const FORMATS = ['npy', 'safetensors', 'index'] as const;

/** Keeps the first `m` of `d` values per row and rescales each row to unit L2 norm. */
export function truncateAndNormalize(data: Float32Array, rows: number, d: number, m: number): Float32Array {
  const out = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let j = 0; j < m; j++) norm += data[r * d + j]! ** 2;
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let j = 0; j < m; j++) out[r * m + j] = data[r * d + j]! * scale;
  }
  return out;
}

export const embedCommand = defineMrlCommand({
  name: 'embed',
  description:
    'Embed a data split with the trained model of a run, keep the first --dim dims and renormalise, and write <out>.npy (+ <out>.labels.npy), <out>.safetensors (embeddings, labels) and <out>.mrlidx (a search index for mrl-cli search).',
  examples: [
    'mrl-cli embed --run-dir runs/vision-mlp --split train --dim 32',
    'mrl-cli embed --run-dir runs/vision-mlp --split test --limit 1000 --out out/queries --formats npy,safetensors',
    'python3 -c "import numpy; print(numpy.load(\'out/queries.npy\').shape)"',
  ],
  flags: { ...RUN_DIR_FLAG, ...EMBED_FLAGS, ...DATA_FLAGS, ...BACKEND_FLAGS, ...COMMON_FLAGS, ...ADAPTOR_FLAG },
  // The run's data settings and plug-ins are the defaults.
  async base(args) {
    if (typeof args['run-dir'] !== 'string') return {};
    const flags = (await readRunConfig(resolve(args['run-dir'])))?.flags ?? {};
    const pick = ['modality', 'data', 'data-dir', 'plugin', 'backend', 'kernels'];
    return Object.fromEntries(Object.entries(flags).filter(([k]) => pick.includes(k)));
  },
  async run(options) {
    const runDir = resolve(requireRunDir(options['run-dir'], 'embed'));
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
    // The index is written when core has it; asked for explicitly, its absence is an error.
    const explicitIndex = options.formats !== EMBED_FLAGS.formats.default && formats.includes('index');
    const api = explicitIndex ? await requireAdaptiveApi('--formats index') : await adaptiveApi();
    if (options.modality !== 'vision') {
      throw new MrlError(
        'unsupported',
        `mrl-cli embed reads vision data sets only in this build, not --modality ${options.modality}.`,
        'Use a vision run folder.',
      );
    }
    if (options.data !== 'fashion-mnist')
      throw new MrlError('unknown-name', `unknown vision data set '${options.data}'.`, 'Use --data fashion-mnist.');
    const registry = await buildRegistry(options.plugin);
    await initBackend(options.backend, { kernels: options.kernels });
    const encoder = await loadModel(join(runDir, 'model'), registry);
    const d = encoder.embeddingDim;
    const m = options.dim ?? d;
    if (!Number.isInteger(m) || m < 1 || m > d) {
      encoder.dispose();
      throw new MrlError(
        'invalid-argument',
        `--dim ${m} is larger than the model's embedding dim d = ${d}.`,
        `Use --dim between 1 and ${d}; Matryoshka prefixes are the first dims of the d-dim embedding.`,
      );
    }
    const data = await loadFashionMnist(options['data-dir']);
    const split = options.split === 'train' ? data.train : data.test;
    const count = Math.min(split.count, options.limit ?? split.count);
    const size = split.height * split.width * split.channels;
    const full = await embedDataset(encoder, count, (indices) => {
      const out = new Float32Array(indices.length * size);
      indices.forEach((row, i) => out.set(split.images.subarray(row * size, (row + 1) * size), i * size));
      return tf.tensor(out, [indices.length, split.height, split.width, split.channels]);
    });
    encoder.dispose();
    // With --adaptor, the Matryoshka-Adaptor maps the full embeddings before truncation. It was
    // trained on what this command writes (unit-norm rows), so it gets unit-norm rows.
    const mapped =
      options.adaptor === undefined
        ? full
        : applyAdaptor(
            await loadAdaptor(resolve(options.adaptor)),
            { data: truncateAndNormalize(full.data, count, d, d), rows: count, dim: d },
            'the embeddings',
          );
    const embeddings = truncateAndNormalize(mapped.data, count, d, m);
    const labels = Int32Array.from(split.labels.subarray(0, count));
    const out = resolve(options.out ?? join(runDir, 'embeddings', `${options.split}-d${m}`));
    await mkdir(dirname(out), { recursive: true });
    const written: string[] = [];
    if (formats.includes('npy')) {
      await writeNpy(`${out}.npy`, embeddings, [count, m]);
      await writeNpy(`${out}.labels.npy`, labels, [count]);
      written.push(`${out}.npy`, `${out}.labels.npy`);
    }
    const metadata = {
      model: String(encoder.config.architecture),
      dim: String(m),
      modelDim: String(d),
      split: options.split,
      data: options.data,
      normalized: 'l2',
      ...(options.adaptor === undefined ? {} : { adaptor: resolve(options.adaptor) }),
    };
    if (formats.includes('safetensors')) {
      await writeSafetensors(
        `${out}.safetensors`,
        new Map([
          ['embeddings', { shape: [count, m], data: embeddings }],
          ['labels', { shape: [count], data: labels }],
        ]),
        metadata,
      );
      written.push(`${out}.safetensors`);
    }
    if (formats.includes('index') && api !== undefined) {
      const index = api.MatryoshkaIndex.fromVectors(embeddings, { dim: m, labels, metadata });
      api.saveIndex(index, `${out}.mrlidx`);
      written.push(`${out}.mrlidx`);
    } else if (formats.includes('index')) {
      process.stderr.write('note: no search index written (this build of @mrl/core has no adaptive index yet)\n');
    }
    process.stdout.write(
      `embedded ${count} ${options.split} examples, d=${d} -> ${m} dims (L2-normalised)\n${written.map((w) => `  ${displayPath(w)}`).join('\n')}\n`,
    );
  },
});

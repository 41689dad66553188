import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend, MrlError } from '@mrl/core';
import { defineMrlCommand } from '../command.js';
import { BACKEND_FLAGS, COMMON_FLAGS, EXPORT_FLAGS, RUN_DIR_FLAG } from '../flags.js';
import { displayPath, readJsonFile, requireRunDir } from '../run-folder.js';

/** What a text run's `<run-dir>/model/config.json` holds beyond Hugging Face's fields. */
interface SavedTextConfig {
  model_type?: string;
  mrl?: {
    nesting_dims?: number[];
    pooling?: 'mean' | 'cls' | 'pooler';
    evaluation?: { dim: number; values: Record<string, number> }[];
  };
}

export const exportCommand = defineMrlCommand({
  name: 'export',
  description:
    "Write a run's trained model as a deployable folder: a transformers.js / ONNX model (opset 17, the nesting dims in its metadata and config.json), a Hugging Face folder (model.safetensors under BertModel names) or a sentence-transformers folder, each with a model card. Text (BERT) runs.",
  examples: [
    'mrl-cli export --run-dir runs/text-bert-tiny --format onnx',
    'mrl-cli export --run-dir runs/text-bert-tiny --format sentence-transformers --out models/my-mrl-bert',
    'mrl-cli export --run-dir runs/text-bert-tiny --format hf',
  ],
  flags: { ...RUN_DIR_FLAG, ...EXPORT_FLAGS, ...BACKEND_FLAGS, ...COMMON_FLAGS },
  async run(options) {
    const runDir = resolve(requireRunDir(options['run-dir'], 'export'));
    const modelDir = join(runDir, 'model');
    const configFile = join(modelDir, 'config.json');
    if (!existsSync(configFile)) {
      throw new MrlError(
        'missing-file',
        `there is no trained model in ${displayPath(modelDir)} (config.json is missing).`,
        'Train one first with mrl-cli fit --modality text --run-dir <folder>, and pass the same --run-dir.',
      );
    }
    const saved = await readJsonFile<SavedTextConfig>(
      configFile,
      'the saved model config',
      'Train the run again with mrl-cli fit.',
    );
    if (saved.model_type !== 'bert') {
      throw new MrlError(
        'unsupported',
        `the model in ${displayPath(modelDir)} is not a BERT text model (model_type '${String(saved.model_type)}'); mrl-cli export writes text (BERT) runs so far.`,
        'Export a run trained with mrl-cli fit --modality text.',
      );
    }
    const dims = saved.mrl?.nesting_dims;
    if (!Array.isArray(dims) || dims.length === 0) {
      throw new MrlError(
        'corrupt-file',
        `${displayPath(configFile)} has no mrl.nesting_dims.`,
        'Train the run again with mrl-cli fit; it records the nesting dims.',
      );
    }
    await initBackend(options.backend, { kernels: options.kernels });
    const { exportTextModel, loadHfBert } = await import('@mrl/text');
    const { encoder, tokenizer } = await loadHfBert(modelDir, { pooling: saved.mrl?.pooling ?? 'mean' });
    const out = resolve(options.out ?? join(runDir, `export-${options.format}`));
    const files = await exportTextModel(encoder, out, {
      format: options.format,
      dims,
      tokenizerDir: tokenizer.dir,
      ...(saved.mrl?.evaluation === undefined ? {} : { table: saved.mrl.evaluation }),
      name: `mrl ${encoder.config.architecture} d${encoder.embeddingDim}`,
    });
    encoder.dispose();
    process.stdout.write(`${displayPath(out)}: ${files.join(', ')}\n`);
    process.stderr.write(
      `nesting dims ${dims.join(', ')}: keep the first m dims of an embedding and renormalise (see ${displayPath(join(out, 'README.md'))}).\n`,
    );
  },
});

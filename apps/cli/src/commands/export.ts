import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  formatRunTable,
  initBackend,
  loadAdaptor,
  MlpEncoder,
  MrlError,
  mlpOnnxModel,
  runTableDims,
  withAdaptorOnnx,
  writeFileAtomically,
} from '@mrl/core';
import { ResNetEncoder, resnetOnnxModel, VitEncoder, vitOnnxModel } from '@mrl/vision';
import { defineMrlCommand } from '../command.js';
import { ADAPTOR_FLAG, BACKEND_FLAGS, COMMON_FLAGS, EXPORT_FLAGS, RUN_DIR_FLAG } from '../flags.js';
import { readRunMetrics } from '../metrics-file.js';
import { loadModel } from '../model-io.js';
import { buildRegistry } from '../registry.js';
import { displayPath, readJsonFile, requireRunDir } from '../run-folder.js';

/** What a text run's `<run-dir>/model/config.json` holds beyond Hugging Face's fields. */
interface SavedTextConfig {
  model_type?: string;
  /** Vision runs save their encoder config (`architecture`, `embeddingDim`, ...) instead. */
  architecture?: string;
  mrl?: {
    nesting_dims?: number[];
    pooling?: 'mean' | 'cls' | 'pooler';
    evaluation?: { dim: number; values: Record<string, number> }[];
  };
}

export const exportCommand = defineMrlCommand({
  name: 'export',
  description:
    "Write a run's trained model as a deployable folder: a transformers.js / ONNX model (opset 17, the nesting dims in its metadata and config.json), a Hugging Face folder (model.safetensors under BertModel names) or a sentence-transformers folder, each with a model card. Text (BERT) runs take every format; vision MLP, ResNet and ViT runs take --format onnx.",
  examples: [
    'mrl-cli export --run-dir runs/text-bert-tiny --format onnx',
    'mrl-cli export --run-dir runs/text-bert-tiny --format sentence-transformers --out models/my-mrl-bert',
    'mrl-cli export --run-dir runs/text-bert-tiny --format hf',
    'mrl-cli export --run-dir runs/vision-mlp --format onnx',
    'mrl-cli export --run-dir runs/vision-mlp --format onnx --adaptor runs/vision-mlp/adaptor',
  ],
  flags: { ...RUN_DIR_FLAG, ...EXPORT_FLAGS, ...ADAPTOR_FLAG, ...BACKEND_FLAGS, ...COMMON_FLAGS },
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
      await exportVision(runDir, modelDir, saved, options);
      return;
    }
    if (options.adaptor !== undefined) {
      // The text formats leave pooling to the runtime (transformers.js, sentence-transformers), so
      // there is no pooled embedding in the graph for the adaptor to follow.
      throw new MrlError(
        'unsupported',
        `--adaptor applies to vision runs (--format onnx); ${displayPath(runDir)} is a text run, whose exports pool outside the graph.`,
        "Leave out --adaptor and apply the adaptor to the pooled embeddings: @mrl/text's encode(model, texts, { adaptor }), or adaptor.onnx from mrl-cli adapt after pooling.",
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

/** A vision MLP, ResNet or ViT run as `onnx/model.onnx` (output `embedding`), config.json and a model card. */
async function exportVision(
  runDir: string,
  modelDir: string,
  saved: SavedTextConfig,
  options: {
    format: string;
    out?: string | undefined;
    adaptor?: string | undefined;
    plugin: string[];
    backend: string;
    kernels: string;
  },
): Promise<void> {
  const unsupported = (what: string): MrlError =>
    new MrlError(
      'unsupported',
      `mrl-cli export writes BERT text runs (every format) and MLP, ResNet and ViT vision runs (--format onnx); the model in ${displayPath(modelDir)} is ${what} and --format is ${options.format}.`,
      'Export a text run with any format, or a vision run with --format onnx.',
    );
  if (options.format !== 'onnx') throw unsupported(`'${String(saved.architecture ?? saved.model_type)}'`);
  if ('vision' in saved && 'text' in saved)
    throw unsupported(`the '${String(saved.architecture)}' dual encoder (align)`);
  // Read before the model loads: a wrong folder fails fast.
  const adaptor = options.adaptor === undefined ? undefined : await loadAdaptor(resolve(options.adaptor));
  await initBackend(options.backend, { kernels: options.kernels as 'auto' });
  const { table } = await readRunMetrics(runDir);
  const dims = runTableDims(table);
  const encoder = await loadModel(modelDir, await buildRegistry(options.plugin));
  let onnx: Uint8Array;
  if (encoder instanceof MlpEncoder) onnx = mlpOnnxModel(encoder, dims);
  else if (encoder instanceof ResNetEncoder) onnx = resnetOnnxModel(encoder, dims);
  else if (encoder instanceof VitEncoder) onnx = vitOnnxModel(encoder, dims);
  else {
    encoder.dispose();
    throw unsupported(`a '${String(encoder.config.architecture)}' encoder`);
  }
  if (adaptor !== undefined) onnx = withAdaptorOnnx(onnx, adaptor);
  const inputShape =
    encoder instanceof MlpEncoder
      ? `[batch, ${encoder.config.inputDim}] (images flattened row-major, NHWC)`
      : `[batch, height, width, ${encoder.config.inputChannels}] (NHWC)`;
  const out = resolve(options.out ?? join(runDir, `export-${options.format}`));
  const mrl = table.series[0]!;
  await writeFileAtomically(join(out, 'onnx', 'model.onnx'), onnx);
  await writeFileAtomically(
    join(out, 'config.json'),
    `${JSON.stringify(
      {
        ...encoder.config,
        mrl: {
          nesting_dims: dims,
          onnx_opset: 17,
          evaluation: mrl.rows,
          ...(adaptor === undefined ? {} : { adaptor: adaptor.config }),
        },
      },
      null,
      2,
    )}\n`,
  );
  await writeFileAtomically(
    join(out, 'README.md'),
    `---
pipeline_tag: feature-extraction
tags:
  - matryoshka
  - mrl
mrl:
  nesting_dims: [${dims.join(', ')}]
  onnx_opset: 17
---

# mrl ${table.model} on ${table.data}

A Matryoshka ${String(encoder.config.architecture)} encoder (Kusupati et al., 2022), d = ${encoder.embeddingDim}: the first m dims of an
embedding, for m in ${dims.join(', ')}, are themselves an embedding.

\`\`\`
${formatRunTable(table)}
\`\`\`

## Use

\`onnx/model.onnx\` (ONNX opset 17, inference mode) maps \`input\` ${inputShape}, scaled as in
training, to \`embedding\` [batch, ${encoder.embeddingDim}]. Truncate: keep
\`embedding[:, :m]\` for a nesting dim m and renormalise; \`mrl.nesting_dims\` in the model's metadata
lists the dims.${
      adaptor === undefined
        ? ''
        : `

The graph ends with a Matryoshka-Adaptor (hidden width ${adaptor.config.hidden}, trained for dims
${adaptor.config.dims.join(', ')}): \`embedding\` is the adapted vector (the model's vector, L2-normalised,
then the adaptor); the model's own vector is the second output, \`unadapted_embedding\`. The
per-dim table above is the model's without the adaptor.`
    }
`,
  );
  encoder.dispose();
  process.stdout.write(`${displayPath(out)}: config.json, onnx/model.onnx, README.md\n`);
}

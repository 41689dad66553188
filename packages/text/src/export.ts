import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXPORT_OPSET, MrlError, OnnxGraph, writeFileAtomically, writeSafetensors } from '@mrl/core';
import type { BertEncoder } from './bert.js';
import { hfBertConfigJson, hfBertTensors } from './hf-bert.js';

/** `mrl-cli export --format`: a transformers.js/ONNX folder, a Hugging Face folder, or a sentence-transformers folder. */
export const EXPORT_FORMATS = ['onnx', 'hf', 'sentence-transformers'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const TWO_SQRT_2_OVER_PI = 2 * Math.sqrt(2 / Math.PI);

/**
 * The encoder as an ONNX graph (opset {@link EXPORT_OPSET}) with BERT's inputs (`input_ids`,
 * `attention_mask`, `token_type_ids`, int64 [batch, sequence]) and two outputs:
 * `last_hidden_state` [batch, sequence, d], which transformers.js pools, and
 * `sentence_embedding` [batch, d], pooled as the encoder pools. The nesting dims are in the
 * metadata (`mrl.nesting_dims`): a prefix `z[:, :m]` renormalised is the m-dim embedding.
 *
 * @example
 * ```ts
 * await writeFile('model.onnx', bertOnnxModel(encoder, [8, 16, 32]));
 * ```
 */
export function bertOnnxModel(encoder: BertEncoder, dims: readonly number[]): Uint8Array {
  const c = encoder.config;
  const d = c.embeddingDim;
  const heads = c.numHeads;
  const dh = d / heads;
  const vars = encoder.variables();
  const g = new OnnxGraph('mrl-bert');
  const weight = (name: string): string => {
    const v = vars.get(name)!;
    return g.initializer(name, v.dataSync() as Float32Array, v.shape);
  };
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'sequence']);
  const types = g.input('token_type_ids', 'int64', ['batch', 'sequence']);
  const layerNorm = (x: string, prefix: string): string =>
    g.op('LayerNormalization', [x, weight(`${prefix}/gamma`), weight(`${prefix}/beta`)], {
      axis: -1,
      epsilon: c.layerNormEps,
    });
  const linear = (x: string, prefix: string): string =>
    g.op('Add', [g.op('MatMul', [x, weight(`${prefix}/w`)]), weight(`${prefix}/b`)]);

  // Embeddings: token + position (rows 0..T-1) + segment, then LayerNorm. [B, T, d]
  const sequence = g.op('Slice', [g.op('Shape', [ids]), g.ints([1]), g.ints([2])]); // [1]: T
  const positions = g.op('Slice', [weight('embeddings/position'), g.ints([0]), sequence, g.ints([0])]); // [T, d]
  const summed = g.op('Add', [
    g.op('Add', [g.op('Gather', [weight('embeddings/token'), ids]), positions]),
    g.op('Gather', [weight('embeddings/segment'), types]),
  ]);
  let x = layerNorm(summed, 'embeddings/ln');
  // Additive attention mask: 0 for real keys, -1e9 for padding. [B, 1, 1, T]
  const maskF = g.op('Cast', [mask], { to: 1 });
  const bias = g.op('Reshape', [
    g.op('Mul', [g.op('Sub', [maskF, g.scalar(1)]), g.scalar(1e9)]),
    g.ints([0, 1, 1, -1]),
  ]);
  const headShape = g.ints([0, 0, heads, dh]);
  const flatShape = g.ints([0, 0, d]);
  const scale = g.scalar(1 / Math.sqrt(dh));
  const gelu = (h: string): string =>
    (c.activation ?? 'tanh') === 'erf'
      ? g.op('Mul', [
          g.op('Mul', [h, g.scalar(0.5)]),
          g.op('Add', [g.op('Erf', [g.op('Mul', [h, g.scalar(Math.SQRT1_2)])]), g.scalar(1)]),
        ])
      : g.op('Mul', [
          h,
          g.op('Sigmoid', [
            g.op('Mul', [
              h,
              g.op('Add', [
                g.op('Mul', [g.op('Mul', [h, h]), g.scalar(TWO_SQRT_2_OVER_PI * 0.044715)]),
                g.scalar(TWO_SQRT_2_OVER_PI),
              ]),
            ]),
          ]),
        ]);
  for (let i = 0; i < c.numLayers; i++) {
    const at = `layer${i}`;
    const q = g.op('Transpose', [g.op('Reshape', [linear(x, `${at}/q`), headShape])], { perm: [0, 2, 1, 3] }); // [B, H, T, dh]
    const kT = g.op('Transpose', [g.op('Reshape', [linear(x, `${at}/k`), headShape])], { perm: [0, 2, 3, 1] }); // [B, H, dh, T]
    const v = g.op('Transpose', [g.op('Reshape', [linear(x, `${at}/v`), headShape])], { perm: [0, 2, 1, 3] });
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT]), scale]), bias]); // [B, H, T, T]
    const context = g.op('Reshape', [
      g.op('Transpose', [g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v])], { perm: [0, 2, 1, 3] }),
      flatShape,
    ]); // [B, T, d]
    x = layerNorm(g.op('Add', [x, linear(context, `${at}/o`)]), `${at}/ln1`);
    const hidden = gelu(linear(x, `${at}/ff1`));
    x = layerNorm(g.op('Add', [x, linear(hidden, `${at}/ff2`)]), `${at}/ln2`);
  }
  g.output(x, 'last_hidden_state', 'float32', ['batch', 'sequence', d]);

  let pooled: string;
  if (c.pooling === 'mean') {
    const m = g.op('Reshape', [maskF, g.ints([0, -1, 1])]); // [B, T, 1]
    const sum = g.op('ReduceSum', [g.op('Mul', [x, m]), g.ints([1])], { keepdims: 0 }); // [B, d]
    const count = g.op('Max', [g.op('ReduceSum', [m, g.ints([1])], { keepdims: 0 }), g.scalar(1)]); // [B, 1]
    pooled = g.op('Div', [sum, count]);
  } else {
    const first = g.initializer('first_token', BigInt64Array.of(0n), []);
    pooled = g.op('Gather', [x, first], { axis: 1 }); // [B, d]
    if (c.pooling === 'pooler') pooled = g.op('Tanh', [linear(pooled, 'pooler')]);
  }
  g.output(pooled, 'sentence_embedding', 'float32', ['batch', d]);
  return g.encode(
    {
      'mrl.nesting_dims': JSON.stringify(dims),
      'mrl.embedding_dim': String(d),
      'mrl.pooling': c.pooling,
      'mrl.truncation': 'z[:, :m] / ||z[:, :m]|| for m in mrl.nesting_dims',
    },
    `mrl Matryoshka BERT (d=${d}, nesting dims ${dims.join(', ')}), ONNX opset ${EXPORT_OPSET}.`,
  );
}

/** One row of the model card's per-dim table. */
export interface DimRow {
  dim: number;
  /** Metric name -> value (a fraction in [0, 1] is printed as a percentage). */
  values: Record<string, number>;
}

/** Options of {@link exportTextModel}. */
export interface TextExportOptions {
  format: ExportFormat;
  /** Nesting dims, ascending; the largest is d. */
  dims: readonly number[];
  /** Folder holding `tokenizer.json` and `tokenizer_config.json` (copied). */
  tokenizerDir: string;
  /** Longest input, in tokens (sentence-transformers' `max_seq_length`). */
  maxLength?: number;
  /** Per-dim evaluation for the model card. */
  table?: readonly DimRow[];
  /** Name in the model card's title (default `mrl-bert`). */
  name?: string;
}

function modelCard(encoder: BertEncoder, options: TextExportOptions): string {
  const c = encoder.config;
  const dims = options.dims;
  const smallest = dims[0]!;
  const metrics = [...new Set((options.table ?? []).flatMap((r) => Object.keys(r.values)))];
  const fmt = (v: number | undefined): string =>
    v === undefined ? '' : v >= 0 && v <= 1 ? `${(100 * v).toFixed(1)}%` : v.toFixed(4);
  const table =
    metrics.length === 0
      ? `| dim |\n|---:|\n${dims.map((m) => `| ${m} |`).join('\n')}`
      : [
          `| dim | ${metrics.join(' | ')} |`,
          `|---:|${metrics.map(() => '---:').join('|')}|`,
          ...(options.table ?? []).map((r) => `| ${r.dim} | ${metrics.map((k) => fmt(r.values[k])).join(' | ')} |`),
        ].join('\n');
  const name = options.name ?? 'mrl-bert';
  return `---
library_name: ${options.format === 'sentence-transformers' ? 'sentence-transformers' : 'transformers.js'}
pipeline_tag: feature-extraction
tags:
  - matryoshka
  - mrl
  - sentence-similarity
  - feature-extraction
mrl:
  nesting_dims: [${dims.join(', ')}]
  pooling: ${c.pooling}
  onnx_opset: ${EXPORT_OPSET}
---

# ${name}

A Matryoshka BERT encoder (Kusupati et al., 2022) trained with mrl: d = ${c.embeddingDim}, ${c.numLayers} layers,
${c.numHeads} heads, ${c.pooling} pooling. The first m dims of an embedding, for m in
${dims.join(', ')}, are themselves an embedding.

## Per-dim quality

${table}

## Truncating

Take the first m dims (m one of ${dims.join(', ')}) and renormalise:

\`\`\`js
import { pipeline } from '@huggingface/transformers';
const extractor = await pipeline('feature-extraction', '<this folder>', { local_files_only: true, dtype: 'fp32' });
const out = await extractor(['a cat sat on the mat'], { pooling: '${c.pooling === 'mean' ? 'mean' : 'cls'}', normalize: false });
const z = out.data.slice(0, ${smallest});
const norm = Math.hypot(...z);
const small = z.map((v) => v / norm); // the ${smallest}-dim embedding
\`\`\`

\`\`\`python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer('<this folder>', truncate_dim=${smallest})  # sentence-transformers folders
\`\`\`

The ONNX graph (\`onnx/model.onnx\`, opset ${EXPORT_OPSET}) also outputs \`sentence_embedding\`
[batch, ${c.embeddingDim}]; its metadata key \`mrl.nesting_dims\` lists the dims.
`;
}

/**
 * Writes a trained BERT encoder as a deployable folder. Every format holds `config.json` (with
 * the nesting dims under `mrl`), the tokenizer files and a model card `README.md`; then
 * `onnx`: `onnx/model.onnx` (transformers.js `pipeline('feature-extraction', folder)` loads it);
 * `hf`: `model.safetensors` under Hugging Face `BertModel` names (and the ONNX graph);
 * `sentence-transformers`: the `hf` folder plus `modules.json`, `1_Pooling/config.json`,
 * `config_sentence_transformers.json` and `sentence_bert_config.json`.
 * Files are written atomically.
 *
 * @example
 * ```ts
 * await exportTextModel(encoder, 'out/model', { format: 'onnx', dims: [8, 16, 32], tokenizerDir: 'runs/r/tokenizer' });
 * ```
 */
export async function exportTextModel(
  encoder: BertEncoder,
  outDir: string,
  options: TextExportOptions,
): Promise<string[]> {
  const c = encoder.config;
  const dims = [...options.dims];
  if (dims.length === 0 || dims.some((m, i) => !Number.isInteger(m) || m < 1 || (i > 0 && m <= dims[i - 1]!))) {
    throw new MrlError(
      'invalid-argument',
      `nesting dims must be ascending positive integers, got [${dims.join(', ')}].`,
    );
  }
  if (dims.at(-1)! > c.embeddingDim) {
    throw new MrlError(
      'invalid-argument',
      `nesting dim ${dims.at(-1)} exceeds the encoder's d = ${c.embeddingDim}.`,
      'Export with the dims the model was trained with.',
    );
  }
  if (options.format === 'sentence-transformers' && c.pooling === 'pooler') {
    throw new MrlError(
      'unsupported',
      "a model pooled with BERT's pooler cannot be a sentence-transformers folder (its Pooling module has no pooler dense layer).",
      "Export with --format onnx or hf, or train with pooling 'mean' or 'cls'.",
    );
  }
  const written: string[] = [];
  const write = async (name: string, data: string | Uint8Array): Promise<void> => {
    await writeFileAtomically(join(outDir, name), data);
    written.push(name);
  };
  const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
  await write(
    'config.json',
    json({
      ...hfBertConfigJson(c),
      mrl: {
        nesting_dims: dims,
        pooling: c.pooling,
        onnx_opset: EXPORT_OPSET,
        ...(options.table === undefined ? {} : { evaluation: options.table }),
      },
    }),
  );
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    try {
      await write(file, await readFile(join(options.tokenizerDir, file)));
    } catch (cause) {
      if (MrlError.is(cause)) throw cause;
      throw new MrlError(
        'missing-file',
        `no ${file} in ${options.tokenizerDir}.`,
        "Point tokenizerDir at the run's tokenizer folder.",
        { cause },
      );
    }
  }
  const vocab = await readFile(join(options.tokenizerDir, 'vocab.txt')).catch(() => undefined);
  if (vocab !== undefined) await write('vocab.txt', vocab); // optional: tokenizer.json holds the vocabulary too
  await write('onnx/model.onnx', bertOnnxModel(encoder, dims));
  if (options.format !== 'onnx') {
    await writeSafetensors(join(outDir, 'model.safetensors'), hfBertTensors(encoder), {
      format: 'pt',
      'mrl.nesting_dims': JSON.stringify(dims),
    });
    written.push('model.safetensors');
  }
  if (options.format === 'sentence-transformers') {
    await write(
      'modules.json',
      json([
        { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
        { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      ]),
    );
    await write(
      '1_Pooling/config.json',
      json({
        word_embedding_dimension: c.embeddingDim,
        pooling_mode_cls_token: c.pooling === 'cls',
        pooling_mode_mean_tokens: c.pooling === 'mean',
        pooling_mode_max_tokens: false,
        pooling_mode_mean_sqrt_len_tokens: false,
        pooling_mode_weightedmean_tokens: false,
        pooling_mode_lasttoken: false,
        include_prompt: true,
      }),
    );
    await write(
      'config_sentence_transformers.json',
      json({
        __version__: { sentence_transformers: '3.0.0' },
        prompts: {},
        default_prompt_name: null,
        similarity_fn_name: 'cosine',
        mrl: { nesting_dims: dims },
      }),
    );
    await write(
      'sentence_bert_config.json',
      json({ max_seq_length: options.maxLength ?? c.maxPositions, do_lower_case: false }),
    );
  }
  await write('README.md', modelCard(encoder, options));
  return written;
}

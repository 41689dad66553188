import { createHash } from 'node:crypto';
import { access, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createRandom, MrlError, readSafetensors, type NamedArray, type Random } from '@mrl/core';
import { BertEncoder, type BertConfig, type BertPooling } from './bert.js';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from './tokenizer/tokenizer-json.js';
import { TextTokenizer } from './tokenizer/tokenizer.js';

/** The fields of a Hugging Face BERT `config.json` that the encoder's math depends on. */
export interface HfBertConfigJson {
  model_type?: string;
  architectures?: string[];
  vocab_size?: number;
  hidden_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  intermediate_size?: number;
  hidden_act?: string;
  hidden_dropout_prob?: number;
  max_position_embeddings?: number;
  type_vocab_size?: number;
  layer_norm_eps?: number;
  initializer_range?: number;
  position_embedding_type?: string;
  [key: string]: unknown;
}

/** HF `hidden_act` values and the GELU form each one is. */
const HF_ACTIVATIONS: Readonly<Record<string, 'erf' | 'tanh'>> = {
  gelu: 'erf',
  gelu_new: 'tanh',
  gelu_pytorch_tanh: 'tanh',
  gelu_fast: 'tanh',
};

/** Tensors of BERT pre-training heads and buffers that an encoder does not use. */
const DROPPED = [/^cls\./, /^embeddings\.position_ids$/];

const fixConfig = 'Point --init at a Hugging Face BERT folder (config.json with model_type "bert", model.safetensors).';

/**
 * A `BertConfig` from a Hugging Face `config.json`. Only BERT (`model_type: "bert"`, absolute
 * positions, a GELU activation) maps onto {@link BertEncoder}; anything else is named and refused.
 *
 * @example bertConfigFromHf(JSON.parse(await readFile('models/bert/config.json', 'utf8')), 'mean')
 */
export function bertConfigFromHf(json: HfBertConfigJson, pooling: BertPooling, source = 'config.json'): BertConfig {
  const type = json.model_type;
  if (type !== 'bert') {
    throw new MrlError(
      'unsupported',
      `${source}: model_type '${String(type)}' (architectures ${JSON.stringify(json.architectures ?? [])}) is not a BERT model; mrl imports BERT checkpoints only.`,
      fixConfig,
    );
  }
  const positions = json.position_embedding_type ?? 'absolute';
  if (positions !== 'absolute') {
    throw new MrlError(
      'unsupported',
      `${source}: position_embedding_type '${positions}' is not supported; mrl's BERT has absolute positions.`,
      fixConfig,
    );
  }
  const act = json.hidden_act ?? 'gelu';
  const activation = HF_ACTIVATIONS[act];
  if (activation === undefined) {
    throw new MrlError(
      'unsupported',
      `${source}: hidden_act '${act}' is not supported; mrl's BERT has ${Object.keys(HF_ACTIVATIONS).join(', ')}.`,
      fixConfig,
    );
  }
  const need = (key: keyof HfBertConfigJson): number => {
    const v = json[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new MrlError('corrupt-file', `${source}: ${String(key)} must be a positive integer, got ${String(v)}.`);
    return v;
  };
  return {
    architecture: 'bert',
    embeddingDim: need('hidden_size'),
    vocabSize: need('vocab_size'),
    numLayers: need('num_hidden_layers'),
    numHeads: need('num_attention_heads'),
    intermediateSize: need('intermediate_size'),
    maxPositions: need('max_position_embeddings'),
    typeVocabSize: json.type_vocab_size ?? 2,
    dropout: json.hidden_dropout_prob ?? 0.1,
    pooling,
    layerNormEps: json.layer_norm_eps ?? 1e-12,
    initializerRange: json.initializer_range ?? 0.02,
    activation,
  };
}

/** How one mrl variable is stored in a Hugging Face checkpoint: its name and whether it is transposed. */
interface HfName {
  name: string;
  /** torch `nn.Linear` stores weights [out, in]; mrl's dense layers are [in, out]. */
  transpose: boolean;
}

/** Each `BertEncoder` variable name -> its Hugging Face `BertModel` parameter name. */
export function hfBertNames(config: BertConfig): Map<string, HfName> {
  const out = new Map<string, HfName>();
  const plain = (name: string): HfName => ({ name, transpose: false });
  out.set('embeddings/token', plain('embeddings.word_embeddings.weight'));
  out.set('embeddings/position', plain('embeddings.position_embeddings.weight'));
  out.set('embeddings/segment', plain('embeddings.token_type_embeddings.weight'));
  out.set('embeddings/ln/gamma', plain('embeddings.LayerNorm.weight'));
  out.set('embeddings/ln/beta', plain('embeddings.LayerNorm.bias'));
  const dense: Record<string, string> = {
    q: 'attention.self.query',
    k: 'attention.self.key',
    v: 'attention.self.value',
    o: 'attention.output.dense',
    ff1: 'intermediate.dense',
    ff2: 'output.dense',
  };
  const norms: Record<string, string> = { ln1: 'attention.output.LayerNorm', ln2: 'output.LayerNorm' };
  for (let i = 0; i < config.numLayers; i++) {
    const at = `encoder.layer.${i}`;
    for (const [ours, theirs] of Object.entries(dense)) {
      out.set(`layer${i}/${ours}/w`, { name: `${at}.${theirs}.weight`, transpose: true });
      out.set(`layer${i}/${ours}/b`, plain(`${at}.${theirs}.bias`));
    }
    for (const [ours, theirs] of Object.entries(norms)) {
      out.set(`layer${i}/${ours}/gamma`, plain(`${at}.${theirs}.weight`));
      out.set(`layer${i}/${ours}/beta`, plain(`${at}.${theirs}.bias`));
    }
  }
  if (config.pooling === 'pooler') {
    out.set('pooler/w', { name: 'pooler.dense.weight', transpose: true });
    out.set('pooler/b', plain('pooler.dense.bias'));
  }
  return out;
}

/** Older checkpoints name LayerNorm parameters gamma/beta (TensorFlow's names). */
function legacyName(name: string): string {
  return name.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
}

function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * Loads Hugging Face `BertModel` (or `BertFor*`, whose encoder sits under `bert.`) weights into
 * `encoder`: every variable must find its tensor with the right shape, and every tensor must be
 * used, except pre-training heads (`cls.*`), the position-ids buffer and, unless the encoder
 * pools with it, the pooler. F16 and BF16 files are widened to float32.
 */
export function assignHfBertWeights(
  encoder: BertEncoder,
  tensors: ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>,
  source: string,
): void {
  const names = hfBertNames(encoder.config);
  const prefix = tensors.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
  const lookup = (name: string): { key: string; tensor: Pick<NamedArray, 'shape' | 'data'> } | undefined => {
    for (const key of [`${prefix}${name}`, `${prefix}${legacyName(name)}`]) {
      const tensor = tensors.get(key);
      if (tensor !== undefined) return { key, tensor };
    }
    return undefined;
  };
  const used = new Set<string>();
  const values = new Map<string, Float32Array>();
  const variables = encoder.variables();
  for (const [ours, hf] of names) {
    const variable = variables.get(ours)!;
    const found = lookup(hf.name);
    const expected = hf.transpose ? [...variable.shape].reverse() : variable.shape;
    if (found === undefined) {
      throw new MrlError(
        'corrupt-file',
        `${source} has no tensor '${prefix}${hf.name}' (shape [${expected.join(', ')}]) for the encoder's ${ours}.`,
        'Check that the weights file belongs to the config.json beside it (same num_hidden_layers; a pooler when pooling is "pooler").',
      );
    }
    used.add(found.key);
    if (found.tensor.shape.join(',') !== expected.join(',')) {
      throw new MrlError(
        'corrupt-file',
        `${source}: tensor '${found.key}' has shape [${found.tensor.shape.join(', ')}], config.json needs [${expected.join(', ')}].`,
        'Check that config.json (hidden_size, vocab_size, intermediate_size, max_position_embeddings) matches the weights.',
      );
    }
    const data = found.tensor.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        throw new MrlError(
          'corrupt-file',
          `${source}: tensor '${found.key}' holds ${data[i]} at flat index ${i}.`,
          'Re-export the checkpoint; a model with NaN or infinite weights cannot be fine-tuned.',
        );
      }
    }
    const [rows, cols] = found.tensor.shape as [number, number];
    values.set(ours, hf.transpose ? transpose2d(data, rows, cols) : Float32Array.from(data));
  }
  const pooled = encoder.config.pooling === 'pooler';
  const extra = [...tensors.keys()].filter((key) => {
    if (used.has(key)) return false;
    const bare = key.startsWith(prefix) ? key.slice(prefix.length) : key;
    if (DROPPED.some((re) => re.test(bare) || re.test(key))) return false;
    return pooled || !bare.startsWith('pooler.');
  });
  if (extra.length > 0) {
    throw new MrlError(
      'corrupt-file',
      `${source} has ${extra.length} tensor(s) the BERT encoder does not use: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}.`,
      'The file holds more than a BERT encoder (another architecture or more layers than config.json says); check config.json.',
    );
  }
  for (const [ours, data] of values) {
    const variable = variables.get(ours)!;
    tf.tidy(() => variable.assign(tf.tensor(data, variable.shape, 'float32')));
  }
}

/** Options of {@link loadHfBert}. */
export interface HfBertLoadOptions {
  /** Sentence pooling (default `mean`, as sentence-transformers' BERT models). */
  pooling?: BertPooling;
  /** Weights file inside the folder (default `model.safetensors`). */
  weightsFile?: string;
  /** Dropout override (e.g. 0 for deterministic fine-tuning). */
  dropout?: number;
  /** Seeded stream for the (immediately overwritten) initial weights. */
  random?: Random;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * The folder's tokenizer: its own `tokenizer.json` when present, else a WordPiece tokenizer
 * built from its `vocab.txt` (lower-casing as `tokenizer_config.json`'s `do_lower_case` says,
 * default true) into a folder under the system temp folder, keyed by the vocabulary's hash.
 */
export async function loadHfTokenizer(dir: string): Promise<TextTokenizer> {
  const folder = resolve(dir);
  if (await exists(join(folder, 'tokenizer.json'))) return TextTokenizer.load(folder);
  const vocabFile = join(folder, 'vocab.txt');
  if (!(await exists(vocabFile))) {
    throw new MrlError(
      'missing-file',
      `${folder} has neither tokenizer.json nor vocab.txt.`,
      "Copy the model's tokenizer files into the folder (they come with every Hugging Face BERT model).",
    );
  }
  const vocab = (await readFile(vocabFile, 'utf8')).split('\n');
  while (vocab.length > 0 && vocab[vocab.length - 1] === '') vocab.pop();
  let lowercase = true;
  const configFile = join(folder, 'tokenizer_config.json');
  if (await exists(configFile)) {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { do_lower_case?: boolean };
    lowercase = config.do_lower_case ?? true;
  }
  // Built once per vocabulary into the temp folder (keyed by its hash), then reused.
  const key = createHash('sha256')
    .update(`${lowercase}\n${vocab.join('\n')}`)
    .digest('hex')
    .slice(0, 16);
  const built = join(tmpdir(), `mrl-tokenizer-${key}`);
  if (!(await exists(join(built, 'tokenizer.json')))) {
    // Written beside it, then renamed into place: a concurrent reader sees all the files or none.
    const staging = await mkdtemp(join(tmpdir(), 'mrl-tokenizer-staging-'));
    await writeTokenizerFiles(staging, wordPieceTokenizerFiles(vocab, { lowercase }));
    await rename(staging, built).catch(() => rm(staging, { recursive: true, force: true })); // another process won
  }
  return TextTokenizer.load(built);
}

/** Reads and parses `<dir>/config.json`. */
export async function readHfConfig(dir: string): Promise<HfBertConfigJson> {
  const file = join(resolve(dir), 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new MrlError('missing-file', `no config.json at ${file}.`, fixConfig, { cause });
  }
  try {
    return JSON.parse(text) as HfBertConfigJson;
  } catch (cause) {
    throw new MrlError('corrupt-file', `${file} is not valid JSON: ${(cause as Error).message}.`, fixConfig, {
      cause,
    });
  }
}

/**
 * A pretrained Hugging Face BERT folder (`config.json`, `model.safetensors` in F32, F16 or BF16,
 * `tokenizer.json` or `vocab.txt`) as a trainable {@link BertEncoder} and its tokenizer. Every
 * weight is a trainable variable; the erf GELU of `hidden_act: "gelu"` is kept.
 *
 * @example
 * ```ts
 * const { encoder, tokenizer } = await loadHfBert('models/bert-base-uncased', { pooling: 'mean' });
 * const batch = tokenizer.encodeBatch(['a cat sat'], 32);
 * ```
 */
export async function loadHfBert(
  dir: string,
  options: HfBertLoadOptions = {},
): Promise<{ encoder: BertEncoder; tokenizer: TextTokenizer; hfConfig: HfBertConfigJson }> {
  const folder = resolve(dir);
  const hfConfig = await readHfConfig(folder);
  const config = bertConfigFromHf(hfConfig, options.pooling ?? 'mean', join(folder, 'config.json'));
  if (options.dropout !== undefined) config.dropout = options.dropout;
  const weightsFile = join(folder, options.weightsFile ?? 'model.safetensors');
  if (!(await exists(weightsFile))) {
    const bin = await exists(join(folder, 'pytorch_model.bin'));
    throw new MrlError(
      'missing-file',
      `no weights at ${weightsFile}${bin ? ' (the folder has pytorch_model.bin, a pickle mrl does not read)' : ''}.`,
      'Save the model as safetensors (transformers: model.save_pretrained(dir, safe_serialization=True)).',
    );
  }
  const { tensors } = await readSafetensors(weightsFile);
  const tokenizer = await loadHfTokenizer(folder);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new MrlError(
      'corrupt-file',
      `${folder}: the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocabSize}.`,
      'Use the tokenizer files that came with the model.',
    );
  }
  const encoder = new BertEncoder(config, options.random ?? createRandom(0));
  try {
    assignHfBertWeights(encoder, tensors, weightsFile);
  } catch (e) {
    encoder.dispose();
    throw e;
  }
  return { encoder, tokenizer, hfConfig };
}

/** The encoder's weights under Hugging Face `BertModel` names and layouts ([out, in] linears). */
export function hfBertTensors(encoder: BertEncoder): Map<string, { shape: number[]; data: Float32Array }> {
  const variables = encoder.variables();
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [ours, hf] of hfBertNames(encoder.config)) {
    const variable = variables.get(ours)!;
    const data = variable.dataSync() as Float32Array;
    if (hf.transpose) {
      const [rows, cols] = variable.shape as [number, number];
      out.set(hf.name, { shape: [cols, rows], data: transpose2d(data, rows, cols) });
    } else out.set(hf.name, { shape: [...variable.shape], data: Float32Array.from(data) });
  }
  return out;
}

/** A Hugging Face `config.json` describing `config` (BertModel). */
export function hfBertConfigJson(config: BertConfig): HfBertConfigJson {
  return {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: config.vocabSize,
    hidden_size: config.embeddingDim,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    intermediate_size: config.intermediateSize,
    hidden_act: (config.activation ?? 'tanh') === 'erf' ? 'gelu' : 'gelu_pytorch_tanh',
    hidden_dropout_prob: config.dropout,
    attention_probs_dropout_prob: config.dropout,
    max_position_embeddings: config.maxPositions,
    type_vocab_size: config.typeVocabSize,
    initializer_range: config.initializerRange ?? 0.02,
    layer_norm_eps: config.layerNormEps,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    torch_dtype: 'float32',
  };
}

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { BACKEND_NAMES, KERNEL_SOURCES, MrlError } from '@mrl/core';
import type { ArgsDef } from 'citty';

/*
 * Every flag is declared once, with its type, default and help text. The same declaration turns
 * into citty's argument definitions (for parsing and --help), validates `--config` files, and
 * converts strings to typed values. Precedence: defaults < saved run config (with --resume) <
 * config file < command-line flags.
 */

export type FlagType = 'string' | 'path' | 'boolean' | 'integer' | 'number' | 'enum' | 'integers' | 'numbers' | 'paths';

export interface FlagSpec {
  readonly type: FlagType;
  readonly description: string;
  readonly default?: string | number | boolean;
  /** Allowed values of an `enum` flag. */
  readonly options?: readonly string[];
  readonly alias?: string;
  /** Shown in --help after the flag name, e.g. `<n>`. */
  readonly valueHint?: string;
  /** `fit`: the modalities the flag applies to (default all); giving it for another is an error. */
  readonly modalities?: readonly ModalityFlag[];
}

export type FlagSet = Readonly<Record<string, FlagSpec>>;

type ValueOf<F extends FlagSpec> = F['type'] extends 'boolean'
  ? boolean
  : F['type'] extends 'integer' | 'number'
    ? number
    : F['type'] extends 'integers' | 'numbers'
      ? number[]
      : F['type'] extends 'paths'
        ? string[]
        : F['type'] extends 'enum'
          ? F extends { options: readonly (infer O)[] }
            ? O
            : string
          : string;

/** Typed values of a flag set: flags with a default (and lists) are always present. */
export type Resolved<S extends FlagSet> = {
  [K in keyof S]: S[K] extends { default: string | number | boolean }
    ? ValueOf<S[K]>
    : S[K]['type'] extends 'paths'
      ? string[]
      : ValueOf<S[K]> | undefined;
};

export const MODALITIES = ['vision', 'text', 'align'] as const;
export type ModalityFlag = (typeof MODALITIES)[number];

/** Flags every command takes. */
export const COMMON_FLAGS = {
  config: {
    type: 'path',
    description: 'JSON file with flag values (flags given on the command line win)',
    valueHint: 'mrl.config.json',
  },
  plugin: {
    type: 'paths',
    description: 'ES module exporting an inversify ContainerModule (repeat or comma-separate; config: "plugins")',
    valueHint: './my-encoder.js',
  },
  debug: { type: 'boolean', default: false, description: 'print stack traces with errors' },
} as const satisfies FlagSet;

export const BACKEND_FLAGS = {
  threads: {
    type: 'integer',
    description:
      'threads for the native products and convolutions (default: every core); a fixed count gives the same ' +
      'numbers run after run',
  },
  backend: { type: 'string', default: 'wasm', description: `tensor backend: ${BACKEND_NAMES.join(' | ')}` },
  kernels: {
    type: 'enum',
    options: KERNEL_SOURCES,
    default: 'auto',
    description:
      'wasm backend: what runs matmuls, convolutions and softmax losses (onnxruntime: native, from onnxruntime-node; wasm: XNNPACK)',
  },
} as const satisfies FlagSet;

/** Which model and data. */
export const DATA_FLAGS = {
  modality: { type: 'enum', options: MODALITIES, default: 'vision', description: 'what the encoder reads' },
  data: {
    type: 'string',
    description:
      'data set: vision fashion-mnist, a folder of class sub-folders or a path,label .csv/.jsonl; text ' +
      'a .jsonl/.csv/.tsv file (classify, pairs), wordnet or corpora (mlm); align ' +
      'openclipart, a .jsonl of {image, caption} pairs or a folder of images with .txt captions',
  },
  'data-dir': {
    type: 'path',
    description: "folder with the data files (default: the data set's install folder)",
  },
} as const satisfies FlagSet;

export const RUN_DIR_FLAG = {
  'run-dir': {
    type: 'path',
    description: 'run folder (fit default: runs/<modality>-<model>)',
    valueHint: 'runs/vision-mlp',
  },
} as const satisfies FlagSet;

/** Commands that read a run folder's config.json, which may name plug-ins. */
export const TRUST_FLAGS = {
  'trust-plugins': {
    type: 'boolean',
    default: false,
    description: "load the plug-ins a run folder's config.json names (a plug-in is code that runs with your rights)",
  },
} as const satisfies FlagSet;

const TEXT: readonly ModalityFlag[] = ['text'];
const ALIGN: readonly ModalityFlag[] = ['align'];
const VISION: readonly ModalityFlag[] = ['vision'];
const TEXT_ALIGN: readonly ModalityFlag[] = ['text', 'align'];

export const TRAIN_FLAGS = {
  model: {
    type: 'string',
    description: 'encoder name, see mrl-cli models (default: vision mlp, text bert-tiny, align align-tiny)',
  },
  'model-config': {
    type: 'string',
    description: 'encoder config fields to override, as a JSON object, e.g. \'{"numLayers":1}\'',
    valueHint: '<json>',
  },
  dim: {
    type: 'integer',
    description: "embedding size d (vision, align; a text encoder's d comes from its config)",
  },
  dims: { type: 'integers', description: 'nesting dims, e.g. 8,16,32,64 (default: powers of two up to d)' },
  'min-dim': { type: 'integer', description: 'smallest default nesting dim (default 8)' },
  weights: {
    type: 'numbers',
    description: 'relative importance of each nesting dim in the loss, e.g. 2,2,1,1,1 (default: 1 each)',
    modalities: ['vision', 'align'],
  },
  'head-lr-scale': {
    type: 'number',
    description:
      "the linear heads' learning rate as a multiple of --lr, MRL, FF and the SVD/Rand/Untrained probes alike (default 1)",
    modalities: ['vision'],
  },
  'dims-per-step': {
    type: 'integer',
    description: 'sample this many nesting dims per step (the full dim always kept)',
    modalities: ALIGN,
  },
  head: {
    type: 'enum',
    options: ['separate', 'shared'],
    description:
      'separate heads (MRL) or one sliced head (MRL-E); default separate for vision, shared for text classify files',
    modalities: ['vision', 'text'],
  },
  task: {
    type: 'enum',
    options: ['classify', 'pairs', 'retrieve', 'mlm'],
    description:
      'text task (default classify): texts -> classes (--data file, or WordNet gloss -> lexicographer ' +
      'class); pairs: anchor -> positive with in-batch and hard negatives (--data file); retrieve: WordNet ' +
      'example -> gloss; mlm: masked-LM pre-training',
    modalities: TEXT,
  },
  'test-file': {
    type: 'path',
    description: 'text: a test file with the fields of --data (default: a hash split by --test-fraction)',
    modalities: TEXT,
  },
  'text-field': {
    type: 'string',
    description: 'text files: the field (JSONL) or column (CSV/TSV) with the text (default text)',
    modalities: TEXT,
  },
  'label-field': {
    type: 'string',
    description: 'classify files: the field or column with the label (default label)',
    modalities: TEXT,
  },
  'anchor-field': { type: 'string', description: 'pairs files: the anchor field (default anchor)', modalities: TEXT },
  'positive-field': {
    type: 'string',
    description: 'pairs files: the positive field (default positive)',
    modalities: TEXT,
  },
  'negative-field': {
    type: 'string',
    description: 'pairs files: the hard-negative field, used when present (default negative)',
    modalities: TEXT,
  },
  candidates: {
    type: 'path',
    description:
      'pairs files: score each test anchor against every text of this file (field --text-field) instead of the test positives, e.g. lexnames.jsonl for WordNet pairs',
    modalities: TEXT,
  },
  'max-text-chars': {
    type: 'integer',
    description: 'text files: longest text in characters (default 20000)',
    modalities: TEXT,
  },
  'long-text': {
    type: 'enum',
    options: ['truncate', 'error'],
    description: 'text files: a longer text is cut with a warning, or is an error naming its line (default truncate)',
    modalities: TEXT,
  },
  epochs: { type: 'number', description: 'passes over the training data (default: vision 10, text 1, align 4)' },
  steps: {
    type: 'integer',
    description: 'train exactly N steps (instead of --epochs)',
    modalities: TEXT_ALIGN,
  },
  'batch-size': { type: 'integer', description: 'examples per step (default: vision 128, text 32, align 128)' },
  optimizer: {
    type: 'enum',
    options: ['adamw', 'sgd'],
    default: 'adamw',
    description: 'optimiser',
    modalities: VISION,
  },
  lr: { type: 'number', description: 'peak learning rate (default 0.001)' },
  'weight-decay': { type: 'number', description: 'decoupled weight decay' },
  'warmup-steps': { type: 'integer', description: 'linear warm-up steps' },
  'clip-norm': { type: 'number', description: 'clip the global gradient norm' },
  'train-limit': { type: 'integer', description: 'use only the first N training examples' },
  'test-limit': { type: 'integer', description: 'use only the first N test examples' },
  compare: {
    type: 'string',
    description:
      'baselines, comma-separated: ff, svd, rand, untrained (vision, text files, align; rand is truncation of the model without MRL, trunc for align; untrained: the encoder at its random initialisation, not trained)',
  },
  robustness: {
    type: 'string',
    description: 'also evaluate on corrupted test images, e.g. gaussian-noise:3,gaussian-blur:2,contrast:3',
    modalities: VISION,
  },
  'ff-dims': { type: 'integers', description: 'train FF baselines only at these dims', modalities: VISION },
  'train-only': {
    type: 'string',
    description: 'train only these models of the run and skip the table, e.g. mrl,ff-8 (split a run across machines)',
    modalities: VISION,
  },
  'max-queries': {
    type: 'integer',
    description: 'test images used as 1-NN / mAP@10 queries (default 2000)',
    modalities: VISION,
  },
  'center-retrieval': {
    type: 'boolean',
    default: true,
    description: 'centre embeddings by the training mean before 1-NN / mAP@10',
    modalities: VISION,
  },
  'save-model': {
    type: 'boolean',
    default: true,
    description: 'write the trained model to <run-dir>/model',
    modalities: VISION,
  },
  'vocab-size': {
    type: 'integer',
    description: "train a WordPiece vocabulary of this size on the training texts (default: bert-base-uncased's)",
    modalities: TEXT_ALIGN,
  },
  tokenizer: { type: 'path', description: 'folder with a tokenizer.json to use', modalities: TEXT },
  'max-length': {
    type: 'integer',
    description: 'tokens per text, [CLS] and [SEP] included (default: text 32, align 24)',
    modalities: TEXT_ALIGN,
  },
  corpora: {
    type: 'string',
    description: 'mlm: packaged corpora, comma-separated (default: brown,sotu,moby-dick,nlp-corpus,wordnet)',
    modalities: TEXT,
  },
  'text-files': {
    type: 'paths',
    description: 'mlm: extra texts, one a line (.txt) or field "text" (.jsonl)',
    modalities: TEXT,
  },
  'mask-probability': {
    type: 'number',
    description: 'mlm: fraction of tokens masked in training (default 0.15)',
    modalities: TEXT,
  },
  'database-size': {
    type: 'integer',
    description: 'retrieve: glosses searched, held-out ones included (default 10000; 0 = all)',
    modalities: TEXT,
  },
  backbone: {
    type: 'path',
    description: 'classify/retrieve: a local transformers.js model folder used frozen; trains a projection on top',
    modalities: TEXT,
  },
  'backbone-pooling': {
    type: 'enum',
    options: ['mean', 'cls'],
    description: "pooling of the backbone's token states (default mean)",
    modalities: TEXT,
  },
  'projection-dim': {
    type: 'integer',
    description: 'size of the projection trained on a --backbone (default 128)',
    modalities: TEXT,
  },
  'vision-model': { type: 'string', description: "image tower (default: the align model's)", modalities: ALIGN },
  'text-model': { type: 'string', description: "text tower (default: the align model's)", modalities: ALIGN },
  gallery: {
    type: 'enum',
    options: ['test', 'all'],
    description:
      'retrieval candidates: the test pairs (test, default), or the whole collection (all: each test image against every caption, training captions included, and each test caption against every image)',
    modalities: ALIGN,
  },
  'image-size': {
    type: 'integer',
    description: 'images are resized to N x N (default: vision folders 32, align 24)',
    modalities: ['vision', 'align'],
  },
  channels: {
    type: 'integer',
    description: 'image folders: 1 (grey) or 3 (RGB, default); alpha is dropped, grey repeated',
    modalities: VISION,
  },
  'test-fraction': {
    type: 'number',
    description:
      'held out for the table when the data has no test split (default: vision folders and text files 0.2, ' +
      'align 0.1); split by a hash of each path or text',
    modalities: ['vision', 'text', 'align'],
  },
  strict: {
    type: 'boolean',
    default: false,
    description: 'an unreadable image is an error (default: skipped, counted and named in a warning)',
    modalities: VISION,
  },
  augment: {
    type: 'boolean',
    default: true,
    description: 'image folders: random-resized crops and flips in training',
    modalities: VISION,
  },
  'cache-dir': { type: 'path', description: 'where decoded images are cached', modalities: ALIGN },
  'prompt-template': {
    type: 'string',
    description: "zero-shot prompt, {label} is the class name (default 'a drawing of a {label}')",
    modalities: ALIGN,
  },
  seed: { type: 'integer', default: 0, description: 'random seed' },
  'checkpoint-every': {
    type: 'integer',
    description: 'write a checkpoint every N steps, and at the end (default: vision 500, else only at the end)',
  },
  resume: { type: 'boolean', default: false, description: 'continue from the newest checkpoint in the run folder' },
  overwrite: {
    type: 'boolean',
    default: false,
    description:
      'start afresh in a run folder that holds an earlier run, removing its config, checkpoints, model and metrics',
  },
  'from-checkpoint': {
    type: 'string',
    description:
      'continue from an older checkpoint: a step number or a ckpt-<step>.safetensors path (newer ones are renamed *.superseded)',
    valueHint: '<step|path>',
  },
  'keep-checkpoints': {
    type: 'integer',
    default: 3,
    description: 'checkpoints kept per model: the roll-back window after divergence',
  },
  'log-format': {
    type: 'enum',
    options: ['text', 'json'],
    default: 'text',
    description: 'progress as text, or one JSON object per line',
  },
} as const satisfies FlagSet;

export const FORMAT_FLAG = {
  format: { type: 'enum', options: ['text', 'json', 'csv'], default: 'text', description: 'output format' },
} as const satisfies FlagSet;

export const EMBED_FLAGS = {
  dim: { type: 'integer', description: "keep the first N dims and renormalise (default: the model's d)" },
  split: {
    type: 'enum',
    options: ['train', 'test'],
    default: 'test',
    description: "which split of the run's data to embed (without --input)",
  },
  input: {
    type: 'string',
    description:
      'embed new inputs instead of a split. Vision: a folder (searched recursively), one image, a .txt list of ' +
      "paths, or '-' for paths on standard input (ids are the paths). Text: .txt (one a line), .jsonl or '-'. " +
      'Align: a folder or image (image tower), or .txt / .jsonl / - (text tower)',
    valueHint: '<folder|file|->',
  },
  limit: { type: 'integer', description: 'embed only the first N examples' },
  out: {
    type: 'path',
    description: 'output path without extension (default <run-dir>/embeddings/<split or input>-d<dim>)',
  },
  formats: {
    type: 'string',
    default: 'npy,safetensors,index',
    description: 'comma-separated: npy, safetensors, index, jsonl (one {"id", "embedding"} per line)',
  },
} as const satisfies FlagSet;

export const SEARCH_FLAGS = {
  index: { type: 'path', description: 'index file written by mrl-cli embed (.mrlidx)' },
  queries: { type: 'path', description: 'query embeddings: .npy, .safetensors or .mrlidx from mrl-cli embed' },
  'query-limit': { type: 'integer', default: 1000, description: 'use only the first N queries' },
  k: { type: 'integer', default: 10, description: 'hits per query' },
  shortlist: { type: 'string', description: 'shortlist/re-rank: Ds:K[:Dr], e.g. 16:200 (re-rank at full d)' },
  funnel: { type: 'string', description: "funnel: dims:shortlists, e.g. 16,32,64:200,100 or 'auto'" },
  show: { type: 'integer', default: 3, description: 'print the hits of the first N queries' },
  format: { type: 'enum', options: ['text', 'json'], default: 'text', description: 'output format' },
} as const satisfies FlagSet;

export const EVAL_FLAGS = {
  metric: {
    type: 'string',
    description:
      "what the chart plots: a metric key of the run's table, e.g. top1, nnTop1, recall10 (default: the first)",
  },
  chart: {
    type: 'string',
    description: "chart path without extension (default <run-dir>/accuracy-vs-dim; 'none' skips it); writes .svg, .png",
  },
} as const satisfies FlagSet;

export const REPORT_FLAGS = {
  out: { type: 'path', description: 'write the Markdown report here (default: stdout)' },
} as const satisfies FlagSet;

export const MODELS_FLAGS = {
  format: { type: 'enum', options: ['text', 'json'], default: 'text', description: 'output format' },
} as const satisfies FlagSet;

/** The table of a PostgreSQL/pgvector database (mrl-cli index --to, mrl-cli search --db). */
export const DB_TABLE_FLAG = {
  table: { type: 'string', default: 'mrl_vectors', description: 'table name in the database' },
} as const satisfies FlagSet;

export const INDEX_FLAGS = {
  from: { type: 'path', description: 'index file to copy into the database (.mrlidx from mrl-cli embed)' },
  to: {
    type: 'string',
    description:
      'database: pglite:<directory> (embedded), pglite:memory or postgres://user:password@host:port/db; or an index file <path>.mrlidx (with --first-stage)',
  },
  'first-stage': {
    type: 'string',
    description:
      'with --to <path>.mrlidx: store a quantised first stage, int8:<m> or binary:<m>, so that search reads only the shortlisted rows from the file',
  },
  'prefix-dim': { type: 'integer', description: 'prefix dim m of the HNSW index (default min(64, d))' },
  halfvec: { type: 'boolean', default: false, description: 'store halfvec (2 bytes a dim) instead of vector (4)' },
  replace: { type: 'boolean', default: false, description: 'replace a table of the same name' },
  'maintenance-work-mem': {
    type: 'string',
    description:
      "PostgreSQL's maintenance_work_mem for the HNSW build, e.g. 1GB (pgvector builds several times slower once the graph outgrows it; default: 1GB for pglite, the server's setting for postgres://)",
  },
} as const satisfies FlagSet;

export const DB_SEARCH_FLAGS = {
  db: {
    type: 'string',
    description: 'search a database written by mrl-cli index instead of --index (pglite:<directory> or postgres://...)',
  },
  'shortlist-k': {
    type: 'integer',
    default: 200,
    description:
      'with --db: rows the prefix HNSW shortlists per query; with an --index that stores a first stage: rows its scan keeps',
  },
  'ef-search': { type: 'integer', default: 200, description: 'with --db: hnsw.ef_search (raised to --shortlist-k)' },
} as const satisfies FlagSet;

/** `fit --init`: start from a pretrained model folder. */
export const INIT_FLAGS = {
  init: {
    type: 'path',
    description:
      'text: start from a pretrained Hugging Face BERT folder (config.json, model.safetensors F32/F16/BF16, tokenizer.json or vocab.txt); every layer is fine-tuned',
    valueHint: '<folder>',
    modalities: ['text'],
  },
} as const satisfies FlagSet;

export const EXPORT_FLAGS = {
  format: {
    type: 'enum',
    options: ['onnx', 'hf', 'sentence-transformers'],
    default: 'onnx',
    description:
      'onnx: transformers.js folder (config.json, tokenizer.json, onnx/model.onnx); hf: + model.safetensors under Hugging Face names; sentence-transformers: + modules.json and pooling config',
  },
  out: { type: 'path', description: 'output folder (default <run-dir>/export-<format>)' },
} as const satisfies FlagSet;

/** mrl-cli adapt: a Matryoshka-Adaptor over existing embeddings. */
export const ADAPT_FLAGS = {
  embeddings: {
    type: 'path',
    description:
      'embeddings to adapt [N, d]: .npy (labels from <name>.labels.npy beside it, if any), .safetensors (tensors "embeddings", optional "labels") or .jsonl (an array, or {"embedding": [...], "label": 3}, per line)',
    valueHint: 'corpus.npy',
  },
  pairs: {
    type: 'paths',
    description:
      'supervision: query and document embeddings, row i of each one pair (.npy or .safetensors); an optional third file holds a hard negative per query (a wrong answer close to it), a negative of every query in its batch',
    valueHint: 'queries.npy,docs.npy[,negatives.npy]',
  },
  dims: { type: 'integers', description: 'nesting dims, e.g. 8,16,32,64 (default: powers of two up to d)' },
  weights: {
    type: 'numbers',
    description: 'relative importance of each nesting dim in every loss term (default: 1 each)',
  },
  out: {
    type: 'path',
    description: 'folder for adaptor.safetensors, adaptor.json, adaptor.onnx and table.json',
    valueHint: 'adaptor',
  },
  hidden: { type: 'integer', description: 'hidden width of the residual MLP (default 2d)' },
  rotation: {
    type: 'enum',
    options: ['none', 'pca'],
    default: 'none',
    description: "start from the identity (f(e) = e + g(e)) or from the corpus' PCA rotation",
  },
  center: {
    type: 'boolean',
    default: false,
    description:
      "subtract the training rows' mean before the adaptor (stored with it and applied everywhere it runs); with --rotation pca the untrained adaptor is the centred PCA map",
  },
  epochs: { type: 'number', default: 4, description: 'passes over the training rows' },
  'batch-size': { type: 'integer', default: 256, description: 'rows per step (the pair losses cost batch^2)' },
  lr: { type: 'number', default: 0.001, description: 'AdamW peak learning rate (cosine decay)' },
  'top-k': { type: 'integer', default: 10, description: 'neighbours per row in the top-k similarity loss' },
  'pairwise-weight': { type: 'number', default: 0.2, description: 'weight of the all-pairs similarity loss' },
  'topk-weight': { type: 'number', default: 10, description: 'weight of the top-k neighbour similarity loss' },
  'neighbour-weight': {
    type: 'number',
    default: 0,
    description: "weight of the neighbour-distribution loss (KL of each row's neighbour softmax, full vs prefix)",
  },
  'reconstruction-weight': { type: 'number', default: 0.1, description: 'weight of the reconstruction loss' },
  'ranking-weight': {
    type: 'number',
    default: 1,
    description: 'weight of the ranking loss on --pairs or --label-pairs',
  },
  'distill-weight': {
    type: 'number',
    default: 0,
    description:
      "weight of the self-distillation loss on --pairs or --label-pairs: each nesting dim below the largest learns the largest prefix's ranking softmax over the batch (needs two or more --dims)",
  },
  'label-pairs': {
    type: 'boolean',
    default: false,
    description:
      "supervision from the embeddings' labels: the ranking loss pairs each training row with another training row of its class, the class' other rows not counted as negatives (instead of --pairs)",
  },
  holdout: {
    type: 'number',
    default: 0.1,
    description: 'fraction of rows (and pairs) held out of training as queries for the per-dim table',
  },
  seed: { type: 'integer', default: 0, description: 'random seed' },
} as const satisfies FlagSet;

/** mrl-cli embed --adaptor: apply an adaptor before truncating. */
export const ADAPTOR_FLAG = {
  adaptor: { type: 'path', description: 'apply the adaptor in this folder (from mrl-cli adapt) before truncating' },
} as const satisfies FlagSet;

/** Every flag of every command: a config file may hold any of them. */
const ALL_FLAGS: FlagSet = {
  ...COMMON_FLAGS,
  ...BACKEND_FLAGS,
  ...DATA_FLAGS,
  ...RUN_DIR_FLAG,
  ...TRUST_FLAGS,
  ...TRAIN_FLAGS,
  ...EMBED_FLAGS,
  ...SEARCH_FLAGS,
  ...EVAL_FLAGS,
  ...REPORT_FLAGS,
  ...DB_TABLE_FLAG,
  ...INDEX_FLAGS,
  ...DB_SEARCH_FLAGS,
  ...INIT_FLAGS,
  ...ADAPT_FLAGS,
  ...ADAPTOR_FLAG,
  // `format` differs per command: checked as a string here, against the command's options later.
  format: { type: 'string', description: 'output format' },
  // `dim` is required by fit and optional by embed: the type is what matters here.
  dim: { type: 'integer', description: 'embedding dim' },
};

/** citty argument definitions; no defaults, so that flags given explicitly can be told apart. */
export function cittyArgs(flags: FlagSet): ArgsDef {
  const out: ArgsDef = {};
  for (const [name, spec] of Object.entries(flags)) {
    const description = `${spec.description}${spec.default === undefined ? '' : ` (default: ${String(spec.default)})`}`;
    if (spec.type === 'boolean') out[name] = { type: 'boolean', description };
    else if (spec.type === 'enum') out[name] = { type: 'enum', options: [...(spec.options ?? [])], description };
    else
      out[name] = {
        type: 'string',
        description,
        ...(spec.valueHint === undefined ? {} : { valueHint: spec.valueHint }),
      };
    if (spec.alias !== undefined) out[name]!.alias = spec.alias;
  }
  return out;
}

const KIND_TEXT: Record<FlagType, string> = {
  string: 'a string',
  path: 'a path (string)',
  boolean: 'true or false',
  integer: 'an integer',
  number: 'a number',
  enum: 'one of',
  integers: 'a list of integers (array or "8,16,32")',
  numbers: 'a list of numbers (array or "2,1,0.5")',
  paths: 'a list of paths (array or comma-separated string)',
};

function describe(value: unknown): string {
  return `${JSON.stringify(value)} (${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value})`;
}

/** Converts one value from a config file (JSON types) or the command line (strings). */
function convert(name: string, spec: FlagSpec, value: unknown, where: 'flag' | string, baseDir: string): unknown {
  const fromFlag = where === 'flag';
  const bad = (): MrlError =>
    fromFlag
      ? new MrlError(
          'invalid-argument',
          `--${name} must be ${KIND_TEXT[spec.type]}${spec.type === 'enum' ? ` ${spec.options?.join(', ')}` : ''}, got '${String(value)}'.`,
          `Run the command with --help to see its flags.`,
        )
      : new MrlError(
          'invalid-config',
          `${where}: field '${name}' must be ${KIND_TEXT[spec.type]}${spec.type === 'enum' ? ` ${spec.options?.join(', ')}` : ''}, got ${describe(value)}.`,
          `Fix the field '${name}' in ${where} or remove it.`,
        );
  const list = (v: unknown): unknown[] =>
    Array.isArray(v)
      ? v
      : typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : [v];
  switch (spec.type) {
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (fromFlag && (value === 'true' || value === 'false')) return value === 'true';
      throw bad();
    case 'integer':
    case 'number': {
      const n =
        typeof value === 'number'
          ? value
          : fromFlag && typeof value === 'string' && value.trim() !== ''
            ? Number(value)
            : Number.NaN;
      if (!Number.isFinite(n) || (spec.type === 'integer' && !Number.isInteger(n))) throw bad();
      return n;
    }
    case 'integers':
    case 'numbers': {
      if (!Array.isArray(value) && typeof value !== 'string') throw bad();
      const items = list(value).map((v) => (typeof v === 'string' ? Number(v) : v));
      const ok = (v: unknown): boolean =>
        typeof v === 'number' && (spec.type === 'integers' ? Number.isInteger(v) : Number.isFinite(v));
      if (items.length === 0 || !items.every(ok)) throw bad();
      return items;
    }
    case 'paths': {
      if (!Array.isArray(value) && typeof value !== 'string') throw bad();
      const items = list(value);
      if (!items.every((v) => typeof v === 'string' && v !== '')) throw bad();
      return (items as string[]).map((p) => resolve(baseDir, p));
    }
    case 'enum':
      if (typeof value !== 'string' || !(spec.options ?? []).includes(value)) throw bad();
      return value;
    case 'path':
      if (typeof value !== 'string' || value === '') throw bad();
      return resolve(baseDir, value);
    case 'string':
      if (typeof value !== 'string') throw bad();
      return value;
  }
}

const camelToKebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function nearest(name: string, known: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = row[j]!;
        row[j] = next;
      }
    }
    return row[b.length]!;
  };
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const dist = distance(name, k);
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return best;
}

/** Reads and validates a config file: every field must be a known flag with the right type. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new MrlError(
      'missing-file',
      `cannot read the config file ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}.`,
      'Check the --config path.',
      { cause },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new MrlError(
      'invalid-config',
      `${path} is not valid JSON: ${(cause as Error).message}.`,
      'Fix the JSON syntax (double-quoted keys, no trailing commas).',
      { cause },
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new MrlError(
      'invalid-config',
      `${path} must hold a JSON object of flag values, got ${describe(raw)}.`,
      'Write it as { "epochs": 5, "dim": 64, ... }.',
    );
  }
  const out: Record<string, unknown> = {};
  const baseDir = dirname(path);
  for (const [key, value] of Object.entries(raw)) {
    const name = key === 'plugins' ? 'plugin' : camelToKebab(key);
    const spec = ALL_FLAGS[name];
    if (spec === undefined || name === 'config') {
      const guess = nearest(name, Object.keys(ALL_FLAGS));
      throw new MrlError(
        'invalid-config',
        `${path}: unknown field '${key}'.`,
        `${guess === undefined ? '' : `Did you mean '${guess}'? `}Fields are flag names (e.g. "epochs", "data-dir", "plugins"); run mrl-cli <command> --help for the list.`,
      );
    }
    out[name] = convert(name, spec, value, path, baseDir);
  }
  return out;
}

/** Flags given on the command line that the command does not know (citty ignores them). */
function checkUnknownFlags(flags: FlagSet, rawArgs: readonly string[], command: string): void {
  const known = new Set(['help', 'h']);
  for (const [name, spec] of Object.entries(flags)) {
    known.add(name);
    if (spec.type === 'boolean') known.add(`no-${name}`);
    if (spec.alias !== undefined) known.add(spec.alias);
  }
  for (const arg of rawArgs) {
    if (arg === '--') break;
    const match = /^--?([^=]+)/.exec(arg);
    if (match === null || /^-\d/.test(arg)) continue;
    const name = match[1]!;
    if (!known.has(name)) {
      const guess = nearest(name, [...known]);
      throw new MrlError(
        'invalid-argument',
        `unknown flag ${arg.split('=')[0]} for mrl-cli ${command}.`,
        `${guess === undefined ? '' : `Did you mean --${guess}? `}Run mrl-cli ${command} --help for its flags.`,
      );
    }
  }
}

/**
 * Resolves a command's flag values: defaults, then `base` (e.g. a saved run config), then the
 * config file, then the flags given on the command line.
 */
export async function resolveFlags<S extends FlagSet>(
  flags: S,
  args: Record<string, unknown>,
  rawArgs: readonly string[],
  command: string,
  base: Record<string, unknown> = {},
): Promise<Resolved<S>> {
  checkUnknownFlags(flags, rawArgs, command);
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(flags)) {
    if (spec.default !== undefined) out[name] = spec.default;
    if (spec.type === 'paths') out[name] = [];
  }
  for (const [name, value] of Object.entries(base))
    if (name in flags && name !== 'config' && name !== 'resume') out[name] = value;
  const configPath = typeof args.config === 'string' ? resolve(args.config) : undefined;
  if (configPath !== undefined) {
    const fromFile = await readConfigFile(configPath);
    for (const [name, value] of Object.entries(fromFile)) {
      const spec = flags[name];
      if (spec === undefined) continue; // a field for another command
      // `format` and `dim` are shared names with per-command meaning: check them against this command.
      out[name] =
        spec.type === 'enum' || spec.type !== ALL_FLAGS[name]?.type
          ? convert(name, spec, value, configPath, dirname(configPath))
          : value;
    }
  }
  for (const [name, spec] of Object.entries(flags)) {
    const value = args[name];
    if (value === undefined || name === 'config') continue;
    if (spec.type === 'paths') {
      const values = (Array.isArray(value) ? value : [value]).flatMap(
        (v) => convert(name, spec, String(v), 'flag', process.cwd()) as string[],
      );
      out[name] = [...(out[name] as string[]), ...values];
    } else {
      out[name] = convert(name, spec, spec.type === 'boolean' ? value : String(value), 'flag', process.cwd());
    }
  }
  if (configPath !== undefined) out.config = configPath;
  return out as Resolved<S>;
}

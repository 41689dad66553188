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
  data: { type: 'string', default: 'fashion-mnist', description: 'data set name' },
  'data-dir': { type: 'path', description: "folder with the data files (default: the data set's install folder)" },
} as const satisfies FlagSet;

export const RUN_DIR_FLAG = {
  'run-dir': {
    type: 'path',
    description: 'run folder (fit default: runs/<modality>-<model>)',
    valueHint: 'runs/vision-mlp',
  },
} as const satisfies FlagSet;

export const TRAIN_FLAGS = {
  model: { type: 'string', default: 'mlp', description: 'encoder name (see mrl-cli models)' },
  dim: { type: 'integer', default: 64, description: 'embedding size d' },
  dims: { type: 'integers', description: 'nesting dims, e.g. 8,16,32,64 (default: powers of two up to d)' },
  weights: {
    type: 'numbers',
    description: 'vision: relative importance of each nesting dim in the loss, e.g. 2,2,1,1,1 (default: 1 each)',
  },
  head: {
    type: 'enum',
    options: ['separate', 'shared'],
    default: 'separate',
    description: 'separate heads (MRL) or one sliced head (MRL-E)',
  },
  epochs: { type: 'number', default: 10, description: 'passes over the training data' },
  'batch-size': { type: 'integer', default: 128, description: 'examples per step' },
  optimizer: { type: 'enum', options: ['adamw', 'sgd'], default: 'adamw', description: 'optimiser' },
  lr: { type: 'number', default: 0.001, description: 'peak learning rate' },
  'weight-decay': { type: 'number', description: 'decoupled weight decay' },
  'warmup-steps': { type: 'integer', description: 'linear warm-up steps' },
  'clip-norm': { type: 'number', description: 'clip the global gradient norm' },
  'train-limit': { type: 'integer', description: 'use only the first N training examples' },
  'test-limit': { type: 'integer', description: 'use only the first N test examples' },
  compare: { type: 'string', description: 'baselines to train too, comma-separated: ff, svd, rand' },
  task: {
    type: 'enum',
    options: ['mlm', 'classify', 'retrieve'],
    description: 'text: masked-LM pre-training, WordNet gloss classification, or WordNet example -> gloss retrieval',
  },
  robustness: {
    type: 'string',
    description: 'vision: also evaluate on corrupted test images, e.g. gaussian-noise:3,gaussian-blur:2,contrast:3',
  },
  seed: { type: 'integer', default: 0, description: 'random seed' },
  'checkpoint-every': {
    type: 'integer',
    default: 500,
    description: 'write a checkpoint every N steps (and at the end)',
  },
  resume: { type: 'boolean', default: false, description: 'continue from the newest checkpoint in the run folder' },
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
  split: { type: 'enum', options: ['train', 'test'], default: 'test', description: 'which split to embed' },
  limit: { type: 'integer', description: 'embed only the first N examples' },
  out: { type: 'path', description: 'output path without extension (default <run-dir>/embeddings/<split>-d<dim>)' },
  formats: {
    type: 'string',
    default: 'npy,safetensors,index',
    description: 'comma-separated: npy, safetensors, index',
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
  metric: { type: 'enum', options: ['top1', 'nnTop1', 'map10'], default: 'top1', description: 'what the chart plots' },
  chart: {
    type: 'string',
    description:
      "chart path without extension (default <run-dir>/accuracy-vs-dim; 'none' skips it); writes .svg and .png",
  },
} as const satisfies FlagSet;

export const REPORT_FLAGS = {
  out: { type: 'path', description: 'write the Markdown report here (default: stdout)' },
} as const satisfies FlagSet;

export const MODELS_FLAGS = {
  format: { type: 'enum', options: ['text', 'json'], default: 'text', description: 'output format' },
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
    description: 'supervision: query and document embeddings, row i of each one pair (.npy or .safetensors)',
    valueHint: 'queries.npy,docs.npy',
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
  epochs: { type: 'number', default: 4, description: 'passes over the training rows' },
  'batch-size': { type: 'integer', default: 256, description: 'rows per step (the pair losses cost batch^2)' },
  lr: { type: 'number', default: 0.001, description: 'AdamW peak learning rate (cosine decay)' },
  'top-k': { type: 'integer', default: 10, description: 'neighbours per row in the top-k similarity loss' },
  'pairwise-weight': { type: 'number', default: 0.2, description: 'weight of the all-pairs similarity loss' },
  'topk-weight': { type: 'number', default: 10, description: 'weight of the top-k neighbour similarity loss' },
  'reconstruction-weight': { type: 'number', default: 0.1, description: 'weight of the reconstruction loss' },
  'ranking-weight': { type: 'number', default: 1, description: 'weight of the ranking loss on --pairs' },
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
  ...TRAIN_FLAGS,
  ...EMBED_FLAGS,
  ...SEARCH_FLAGS,
  ...EVAL_FLAGS,
  ...REPORT_FLAGS,
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

// Command-line options of the GPU check (check.mjs) and the loss comparison, apart from the
// training code so that tests can check them without starting a backend.

export const USAGE =
  'usage: check.mjs [--backend webgpu|wasm|cpu] [--reference cpu|wasm|none] [--models mlp,resnet18,vit,bert] ' +
  '[--steps N] [--tolerance R] [--batch-scale S] [--json FILE] [--torch torch_cuda.py output] [--profile TOP] ' +
  '[--tf-flags NAME=VALUE,...]';

/** Batch sizes and optimisers as in bench/speed.mjs (and bench/torch_speed.py, which times PyTorch). */
export const SPECS = {
  mlp: { batch: 256, what: 'MLP 784-512-512, head 512->10, AdamW' },
  resnet18: { batch: 16, what: 'ResNet-18 CIFAR 32x32x3, d=512, head ->10, SGD+momentum' },
  vit: { batch: 16, what: 'ViT-tiny patch4 32x32x3 (192 wide, 12 deep, 3 heads), head ->10, AdamW' },
  bert: { batch: 8, seq: 128, what: 'BERT-mini (256, 4 layers, 4 heads) MLM, seq 128, tied head over 30522, AdamW' },
};
export const BACKENDS = ['webgpu', 'wasm', 'cpu'];

/** Parses the command line; throws an Error whose message starts with the usage line's reason. */
export function parseArgs(argv) {
  const options = {
    backend: 'webgpu',
    reference: 'cpu',
    models: Object.keys(SPECS),
    steps: 3,
    tolerance: 1e-3,
    batchScale: 1,
    json: undefined,
    torch: undefined,
    /** Kernels to list from one profiled step on --backend (0: no profile). */
    profile: 0,
    /** TF.js flags set before the backends start, e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64. */
    tfFlags: {},
  };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === '--help' || name === '-h') return { ...options, help: true };
    if (!name.startsWith('--') || value === undefined || value.startsWith('--')) {
      throw new Error(`${name.startsWith('--') ? `${name} needs a value` : `unexpected argument '${name}'`}\n${USAGE}`);
    }
    i++;
    const number = (min) => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < min)
        throw new Error(`${name} must be a number >= ${min}, got '${value}'\n${USAGE}`);
      return n;
    };
    switch (name) {
      case '--backend':
      case '--reference': {
        const known = name === '--reference' ? [...BACKENDS, 'none'] : BACKENDS;
        if (!known.includes(value)) throw new Error(`${name} '${value}' is not one of ${known.join(', ')}\n${USAGE}`);
        options[name.slice(2)] = value;
        break;
      }
      case '--models': {
        const models = value.split(',').filter(Boolean);
        const unknown = models.filter((m) => !(m in SPECS));
        if (models.length === 0 || unknown.length > 0) {
          throw new Error(`unknown model '${unknown[0] ?? value}'; known: ${Object.keys(SPECS).join(', ')}\n${USAGE}`);
        }
        options.models = models;
        break;
      }
      case '--steps':
        options.steps = Math.floor(number(2));
        break;
      case '--tolerance':
        options.tolerance = number(0);
        break;
      case '--batch-scale':
        options.batchScale = number(0.01);
        break;
      case '--json':
        options.json = value;
        break;
      case '--torch':
        options.torch = value;
        break;
      case '--profile':
        options.profile = Math.floor(number(0));
        break;
      case '--tf-flags':
        options.tfFlags = parseTfFlags(value);
        break;
      default:
        throw new Error(`unknown option ${name}\n${USAGE}`);
    }
  }
  if (options.reference === options.backend) {
    throw new Error(`--reference must differ from --backend (both '${options.backend}')\n${USAGE}`);
  }
  return options;
}

/**
 * `NAME=VALUE,...` as TF.js flag values: true/false as booleans, numbers as numbers, anything else
 * as a string. Whether NAME is a flag is checked when it is set (TF.js refuses unregistered ones).
 */
export function parseTfFlags(text) {
  const flags = {};
  for (const item of text.split(',').filter(Boolean)) {
    const match = /^([A-Z][A-Z0-9_]*)=(.+)$/.exec(item);
    if (match === null)
      throw new Error(`--tf-flags: '${item}' is not NAME=VALUE (e.g. WEBGPU_CPU_FORWARD=false)\n${USAGE}`);
    const [, name, raw] = match;
    flags[name] = raw === 'true' ? true : raw === 'false' ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return flags;
}

/** Largest relative difference between two loss sequences. */
export function maxRelativeDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) return Number.POSITIVE_INFINITY;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(Math.abs(y), 1e-12));
  }
  return worst;
}

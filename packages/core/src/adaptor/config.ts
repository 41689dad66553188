import { resolveNesting } from '../dims.js';
import { MrlError } from '../errors.js';

/** What defines an adaptor's shape: saved as `adaptor.json` beside its weights. */
export interface AdaptorConfig {
  /** Size d of the embeddings it maps (input and output). */
  dim: number;
  /** Width of the residual MLP's hidden ReLU layer. */
  hidden: number;
  /** Nesting dims the adaptor was trained for, ascending, the last one d. */
  dims: number[];
  /**
   * `pca`: the input is first rotated onto its principal axes (a fixed orthogonal [d, d] matrix
   * saved with the weights), so the untrained adaptor is the PCA rotation and training starts
   * from PCA's prefixes. `none` (default): `f(e) = e + g(e)` exactly.
   */
  rotation?: 'none' | 'pca';
  /**
   * Subtract a fixed mean (the training corpus' mean, `mean` [d] saved with the weights) before
   * the rotation and the MLP: `x = (e - mean) R`. With `rotation: 'pca'` the untrained adaptor is
   * then exactly the centred PCA map (the PCA scores), and the similarities it keeps are the
   * centred cosines that nearest-neighbour search on centred vectors scores. Default false.
   */
  center?: boolean;
}

/** The default hidden width: twice the embedding size, as small MLP adaptors usually use. */
export function defaultHidden(dim: number): number {
  return 2 * dim;
}

/**
 * Validates a config read from a file or built from options; `source` names where it came from.
 *
 * @example validateAdaptorConfig({ dim: 64, hidden: 128, dims: [8, 16, 32, 64] }, 'adaptor.json');
 */
export function validateAdaptorConfig(value: unknown, source: string): AdaptorConfig {
  const fix = 'Write the adaptor again with mrl-cli adapt, or fix the field.';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MrlError('invalid-config', `${source} must hold a JSON object, got ${JSON.stringify(value)}.`, fix);
  }
  const record = value as Record<string, unknown>;
  for (const field of ['dim', 'hidden'] as const) {
    const v = record[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new MrlError(
        'invalid-config',
        `${source}: field '${field}' must be a positive integer, got ${JSON.stringify(v)}.`,
        fix,
      );
    }
  }
  const dim = record.dim as number;
  const dims = record.dims;
  if (!Array.isArray(dims) || !dims.every((m) => typeof m === 'number')) {
    throw new MrlError(
      'invalid-config',
      `${source}: field 'dims' must be a list of integers, got ${JSON.stringify(dims)}.`,
      fix,
    );
  }
  try {
    resolveNesting({ embeddingDim: dim, dims: dims as number[] });
  } catch (e) {
    if (MrlError.is(e)) throw new MrlError('invalid-config', `${source}: ${e.message}`, fix, { cause: e });
    throw e;
  }
  if (dims.at(-1) !== dim) {
    throw new MrlError(
      'invalid-config',
      `${source}: the last nesting dim must be the embedding size ${dim}, got ${String(dims.at(-1))}.`,
      fix,
    );
  }
  const rotation = record.rotation ?? 'none';
  if (rotation !== 'none' && rotation !== 'pca') {
    throw new MrlError(
      'invalid-config',
      `${source}: field 'rotation' must be 'none' or 'pca', got ${JSON.stringify(rotation)}.`,
      fix,
    );
  }
  const center = record.center ?? false;
  if (typeof center !== 'boolean') {
    throw new MrlError(
      'invalid-config',
      `${source}: field 'center' must be true or false, got ${JSON.stringify(center)}.`,
      fix,
    );
  }
  return {
    dim,
    hidden: record.hidden as number,
    dims: [...(dims as number[])],
    rotation,
    ...(center ? { center } : {}),
  };
}

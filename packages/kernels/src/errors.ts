/**
 * What went wrong, in terms a user can act on. The CLI prints `message` and `fix` as one
 * paragraph and hides the stack unless asked for it.
 */
export type MrlErrorKind =
  | 'invalid-argument'
  | 'invalid-config'
  | 'missing-file'
  | 'corrupt-file'
  | 'unknown-name'
  | 'backend-unavailable'
  | 'non-finite-loss'
  | 'non-finite-value'
  | 'file-system'
  | 'run-folder-busy'
  | 'unsupported';

const MRL_ERROR = Symbol.for('mrl/MrlError');

/**
 * The one error class of the project: a `kind` to branch on, and a `fix` that tells the user
 * what to do next.
 *
 * @example
 * ```ts
 * try { resolveNestingDims({ embeddingDim: 64, dims: [128] }); }
 * catch (e) { if (MrlError.is(e)) console.error(e.kind, e.message, e.fix); }
 * ```
 */
export class MrlError extends Error {
  readonly [MRL_ERROR] = true;
  override readonly name = 'MrlError';

  constructor(
    readonly kind: MrlErrorKind,
    message: string,
    readonly fix?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True for an MrlError, also one thrown by another copy of this package. */
  static is(value: unknown): value is MrlError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MRL_ERROR] === true;
  }
}

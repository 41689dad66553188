import { type AdaptorWeights, applyAdaptor } from './adaptor/adaptor.js';
import { loadAdaptor } from './adaptor/io.js';
import type { EmbeddingMatrix } from './evaluate/embeddings.js';
import { MrlError } from './errors.js';
import { truncateAndNormalize } from './prefix.js';

/** Output precisions, as sentence-transformers' `quantize_embeddings`. */
export const EMBEDDING_PRECISIONS = ['float32', 'int8', 'uint8', 'binary', 'ubinary'] as const;
export type EmbeddingPrecision = (typeof EMBEDDING_PRECISIONS)[number];

/** Per-dim value ranges for int8 / uint8: value j maps [starts[j], starts[j] + 255 steps[j]] to 256 levels. */
export interface QuantizationRanges {
  starts: Float32Array;
  steps: Float32Array;
}

export interface EncodeOptions {
  /** Keep the first `dim` values (a nesting dim, default the model's d). */
  dim?: number;
  /** L2-normalise each truncated embedding (default true). */
  normalize?: boolean;
  precision?: EmbeddingPrecision;
  /**
   * int8 / uint8 calibration: the per-dim ranges to use (from {@link quantizationRanges} on a
   * calibration set). Default: the min and max of the embeddings being encoded, as
   * sentence-transformers does without `calibration_embeddings`. Queries and corpus must share one
   * calibration, so pass the corpus's ranges when encoding queries.
   */
  ranges?: QuantizationRanges;
  /** Inputs per encoder call (default 128). */
  batchSize?: number;
  /**
   * A Matryoshka-Adaptor (core's `fitAdaptor` / `mrl-cli adapt`), as loaded weights or its folder:
   * applied to the unit-norm full embeddings (what `mrl-cli embed` writes and `adapt` trains on)
   * before the prefix is kept and renormalised.
   */
  adaptor?: AdaptorWeights | string;
}

/** Encoded embeddings: `rows` x `width` values (width = dim, or ceil(dim / 8) bytes for binary). */
export interface EncodedEmbeddings {
  precision: EmbeddingPrecision;
  data: Float32Array | Int8Array | Uint8Array;
  rows: number;
  dim: number;
  width: number;
  /** The int8 / uint8 calibration used (save it with a corpus to encode its queries). */
  ranges?: QuantizationRanges;
}

/**
 * Per-dim ranges of a [rows, dim] float matrix: starts = min, steps = (max - min) / 255
 * (sentence-transformers' `quantize_embeddings` calibration), in float32 arithmetic as numpy
 * does it. A constant dim gets step 1 (sentence-transformers would divide by zero).
 */
export function quantizationRanges(data: Float32Array, rows: number, dim: number): QuantizationRanges {
  if (rows < 1) throw new MrlError('invalid-argument', 'quantization ranges need at least one embedding.');
  const starts = new Float32Array(dim).fill(Infinity);
  const ends = new Float32Array(dim).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) {
      const x = data[r * dim + j]!;
      if (x < starts[j]!) starts[j] = x;
      if (x > ends[j]!) ends[j] = x;
    }
  }
  const steps = Float32Array.from(starts, (s, j) => (ends[j]! > s ? Math.fround(Math.fround(ends[j]! - s) / 255) : 1));
  return { starts, steps };
}

/**
 * Quantises a [rows, dim] float matrix as sentence-transformers' `quantize_embeddings`:
 * - `uint8`: `trunc((x - start) / step)`, `int8`: `trunc((x - start) / step - 128)`, per dim, in
 *   float32 as numpy's `astype` computes them, so codes equal sentence-transformers' for values
 *   inside the calibration range. Outside it, codes saturate at 0 / 255 (-128 / 127) where numpy
 *   would wrap around.
 * - `binary` / `ubinary`: bit = x > 0, packed 8 to a byte with the first dim in the high bit
 *   (numpy `packbits`); `binary` stores each byte minus 128 as int8. Each row is packed on its
 *   own (ceil(dim / 8) bytes, zero-padded): the same bytes as sentence-transformers when dim is a
 *   multiple of 8, which its flat `packbits` needs.
 */
export function quantizeEmbeddings(
  data: Float32Array,
  rows: number,
  dim: number,
  precision: EmbeddingPrecision,
  ranges?: QuantizationRanges,
): EncodedEmbeddings {
  if (data.length !== rows * dim)
    throw new MrlError('invalid-argument', `got ${data.length} values for ${rows} rows of ${dim}.`);
  switch (precision) {
    case 'float32':
      return { precision, data, rows, dim, width: dim };
    case 'int8':
    case 'uint8': {
      const r = ranges ?? quantizationRanges(data, rows, dim);
      if (r.starts.length !== dim || r.steps.length !== dim) {
        throw new MrlError(
          'invalid-argument',
          `the quantization ranges have ${r.starts.length} dims but the embeddings have ${dim}.`,
          'Compute the ranges on embeddings truncated to the same dim.',
        );
      }
      const int8 = precision === 'int8';
      const out = int8 ? new Int8Array(rows * dim) : new Uint8Array(rows * dim);
      const [low, high] = int8 ? [-128, 127] : [0, 255];
      for (let i = 0; i < rows * dim; i++) {
        const j = i % dim;
        const level = Math.fround(Math.fround(data[i]! - r.starts[j]!) / r.steps[j]!);
        const code = Math.trunc(int8 ? Math.fround(level - 128) : level);
        out[i] = Math.min(high, Math.max(low, code));
      }
      return { precision, data: out, rows, dim, width: dim, ranges: r };
    }
    case 'binary':
    case 'ubinary': {
      const width = Math.ceil(dim / 8);
      const out = precision === 'binary' ? new Int8Array(rows * width) : new Uint8Array(rows * width);
      for (let r = 0; r < rows; r++) {
        for (let b = 0; b < width; b++) {
          let byte = 0;
          for (let k = 0; k < 8; k++) {
            const j = b * 8 + k;
            if (j < dim && data[r * dim + j]! > 0) byte |= 0x80 >> k;
          }
          out[r * width + b] = precision === 'binary' ? byte - 128 : byte;
        }
      }
      return { precision, data: out, rows, dim, width };
    }
    default:
      throw new MrlError(
        'invalid-argument',
        `unknown precision '${String(precision)}'.`,
        `Choose one of: ${EMBEDDING_PRECISIONS.join(', ')}.`,
      );
  }
}

/** Refuses a precision that is not one of {@link EMBEDDING_PRECISIONS}. */
export function checkPrecision(precision: string): asserts precision is EmbeddingPrecision {
  if (!(EMBEDDING_PRECISIONS as readonly string[]).includes(precision)) {
    throw new MrlError(
      'invalid-argument',
      `unknown precision '${String(precision)}'.`,
      `Choose one of: ${EMBEDDING_PRECISIONS.join(', ')}.`,
    );
  }
}

/**
 * What every modality's `encode` returns from the model's full d-dim embeddings: the adaptor
 * applied to the unit-norm rows when one is given, then the first `dim` values of each row,
 * renormalised by {@link truncateAndNormalize} (one zero-norm rule), then quantised to `precision`.
 *
 * @example
 * ```ts
 * const out = await encodeEmbeddings({ data, rows: 2, dim: 64 }, { dim: 16, precision: 'int8' }); // 2 x 16 int8
 * ```
 */
export async function encodeEmbeddings(
  full: EmbeddingMatrix,
  options: EncodeOptions = {},
  source = 'the embeddings',
): Promise<EncodedEmbeddings> {
  const dim = options.dim ?? full.dim;
  const precision = options.precision ?? 'float32';
  checkPrecision(precision);
  let vectors = full.data;
  if (options.adaptor !== undefined) {
    const weights = typeof options.adaptor === 'string' ? await loadAdaptor(options.adaptor) : options.adaptor;
    const unit = truncateAndNormalize(full.data, full.rows, full.dim, full.dim);
    vectors = applyAdaptor(weights, { data: unit, rows: full.rows, dim: full.dim }, source).data;
  }
  const prefix = truncateAndNormalize(vectors, full.rows, full.dim, dim, { normalize: options.normalize ?? true });
  return quantizeEmbeddings(prefix, full.rows, dim, precision, options.ranges);
}

import {
  checkPrecision,
  embedDataset,
  encodeEmbeddings,
  MrlError,
  type EncodedEmbeddings,
  type EncodeOptions,
} from '@mrl/core';
import { disposeTokens, tokenBatch } from './tasks/embedder.js';
import type { TextModel } from './tasks/model-file.js';

// The precisions and quantisation moved to core (every modality's encode shares them); these
// names stay for existing imports.
export {
  EMBEDDING_PRECISIONS,
  quantizationRanges,
  quantizeEmbeddings,
  type EmbeddingPrecision,
  type EncodeOptions,
  type QuantizationRanges,
} from '@mrl/core';
/** Encoded texts (core's {@link EncodedEmbeddings}). */
export type EncodedTexts = EncodedEmbeddings;

/**
 * Embeds texts with a loaded text model: the first `dim` values of each embedding, renormalised
 * (core's `truncateAndNormalize`), then optionally quantised. With `adaptor`, the unit-norm full
 * embeddings go through the Matryoshka-Adaptor first, so a model trained without MRL still has
 * usable prefixes.
 *
 * @example
 * ```ts
 * const model = await loadTextModel('runs/reviews');
 * const { data } = await encode(model, ['a fine film', 'dull'], { dim: 32, precision: 'ubinary' }); // 2 x 4 bytes
 * const adapted = await encode(model, ['a fine film'], { dim: 8, adaptor: 'runs/reviews/adaptor' });
 * ```
 */
export async function encode(
  model: TextModel,
  texts: readonly string[],
  options: EncodeOptions = {},
): Promise<EncodedTexts> {
  checkPrecision(options.precision ?? 'float32');
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new MrlError('invalid-argument', `text ${i} is a ${typeof t}, not a string.`);
  });
  const full = await embedDataset(
    model.encoder,
    texts.length,
    (idx) =>
      tokenBatch(
        model.tokenizer.encodeBatch(
          [...idx].map((i) => texts[i]!),
          model.maxLength,
        ),
      ),
    { batchSize: options.batchSize ?? 128, dispose: disposeTokens },
  );
  return encodeEmbeddings(full, options, 'the text embeddings');
}

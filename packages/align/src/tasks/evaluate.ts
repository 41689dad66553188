import type { TextTokenizer } from '@mrl/text';
import * as tf from '@tensorflow/tfjs';
import type { PixelSet } from '../data.js';
import { pairedRecall, zeroShotAccuracy, type Embeddings, type RecallRow, type RetrievalGallery } from '../evaluate.js';
import type { DualEncoder } from '../model.js';
import { imageTensor, tokenTensor } from '../tensors.js';

export interface AlignEvaluation {
  recall: RecallRow[];
  zeroShot: number[];
  labels: string[];
  logitScale: number;
}

/** A test split as a dual encoder embeds it: images, their captions, and one prompt per labelled class. */
export interface AlignEmbeddings {
  images: Embeddings;
  texts: Embeddings;
  /** Zero-shot: a prompt embedding per class name (in `labels` order), when there are 2 or more classes. */
  prompts?: Embeddings;
  /** Class names, sorted. */
  labels: string[];
  /** Class id of each image (-1: no label). */
  imageLabels: Int32Array;
  /** More candidates for the test queries (`gallery: 'all'`: the training pairs), never queries themselves. */
  gallery?: RetrievalGallery;
}

/** A test split: decoded images, caption token ids and optional class names. */
export interface AlignSplit {
  pixels: PixelSet;
  ids: number[][];
  labels?: (string | undefined)[];
}

/** Embeds every row of a split in eval mode, `batch` at a time. */
async function embedAll(
  count: number,
  batch: number,
  dim: number,
  run: (indices: number[]) => tf.Tensor2D,
): Promise<Embeddings> {
  const data = new Float32Array(count * dim);
  for (let start = 0; start < count; start += batch) {
    const indices = Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i);
    const z = run(indices);
    data.set(await z.data(), start * dim);
    z.dispose();
  }
  return { data, rows: count, dim };
}

/** Images, captions and zero-shot prompts of a split through both towers (eval mode). */
export async function embedAlignSplit(
  encoder: DualEncoder,
  split: AlignSplit,
  tokenizer: TextTokenizer,
  options: { maxLength: number; promptTemplate?: string; batchSize?: number },
): Promise<AlignEmbeddings> {
  const batch = options.batchSize ?? 256;
  const d = encoder.embeddingDim;
  const embedIds = (ids: number[][]) =>
    embedAll(ids.length, batch, d, (ix) =>
      tf.tidy(() =>
        encoder.encodeTexts(
          tokenTensor(
            ix.map((i) => ids[i]!),
            options.maxLength,
            tokenizer.special,
          ),
          false,
        ),
      ),
    );
  const images = await embedAll(split.pixels.count, batch, d, (ix) =>
    tf.tidy(() => encoder.encodeImages(imageTensor(split.pixels, ix), false)),
  );
  const texts = await embedIds(split.ids);
  const labels = [...new Set((split.labels ?? []).filter((l): l is string => l !== undefined))].sort();
  const imageLabels = Int32Array.from(split.labels ?? [], (l) => (l === undefined ? -1 : labels.indexOf(l)));
  if (labels.length < 2) return { images, texts, labels, imageLabels };
  const template = options.promptTemplate ?? 'a drawing of a {label}';
  const promptIds = labels.map((l) =>
    tokenizer.encode(template.replaceAll('{label}', l.replace(/[_-]+/g, ' ')), false),
  );
  return { images, texts, prompts: await embedIds(promptIds), labels, imageLabels };
}

/**
 * Recall@1/5/10 both ways (over the test pairs and, when `embedded` has one, the gallery) and
 * zero-shot top-1 (labelled test images only) at each of `dims`.
 */
export function scoreAlign(embedded: AlignEmbeddings, dims: readonly number[]): Omit<AlignEvaluation, 'logitScale'> {
  const { images, texts, prompts, imageLabels, gallery } = embedded;
  const recall = pairedRecall(images, texts, dims, undefined, gallery);
  if (prompts === undefined) return { recall, zeroShot: [], labels: embedded.labels };
  const labelled = [...imageLabels.keys()].filter((i) => imageLabels[i]! >= 0);
  const d = images.dim;
  const subset: Embeddings = { data: new Float32Array(labelled.length * d), rows: labelled.length, dim: d };
  labelled.forEach((i, r) => subset.data.set(images.data.subarray(i * d, (i + 1) * d), r * d));
  const zeroShot = zeroShotAccuracy(
    subset,
    Int32Array.from(labelled, (i) => imageLabels[i]!),
    prompts,
    dims,
  );
  return { recall, zeroShot, labels: embedded.labels };
}

/** Recall@1/5/10 both ways and zero-shot top-1 per dim on the test split. */
export async function evaluateAlign(
  encoder: DualEncoder,
  split: AlignSplit,
  tokenizer: TextTokenizer,
  dims: readonly number[],
  options: { maxLength: number; promptTemplate?: string; batchSize?: number },
): Promise<Omit<AlignEvaluation, 'logitScale'>> {
  return scoreAlign(await embedAlignSplit(encoder, split, tokenizer, options), dims);
}

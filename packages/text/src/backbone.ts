import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  MrlError,
  nextSeed,
  type Encoder,
  type EncoderConfig,
  type Random,
  type SupervisedBatch,
  type BatchSource,
  type VariableMap,
} from '@mrl/core';

/** How the backbone's token states [B, T, H] become one vector per text. */
export type BackbonePooling = 'mean' | 'cls';

export interface OnnxBackboneOptions {
  /**
   * A transformers.js model folder on disk: `config.json`, `tokenizer.json` (+
   * `tokenizer_config.json`) and `onnx/model.onnx` (fp32), as `optimum-cli export onnx` writes it.
   */
  modelDir: string;
  /** Output size d of the trainable projection (the largest nesting dim). */
  embeddingDim: number;
  /** `mean` (masked mean over real tokens, default) or `cls` (first token). */
  pooling?: BackbonePooling;
  /** Texts per backbone call when filling the feature cache (default 64). */
  extractBatchSize?: number;
  /** Seeded stream for the projection's initial weights. */
  random: Random;
}

interface FeatureExtractor {
  (
    texts: string[],
    options: { pooling: 'mean' | 'cls'; normalize: boolean },
  ): Promise<{ data: ArrayLike<number>; dims: number[] }>;
  dispose(): Promise<void>;
}

async function requirePath(path: string, what: string, kind: 'dir' | 'file'): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined || (kind === 'dir' ? !info.isDirectory() : !info.isFile())) {
    throw new MrlError(
      'missing-file',
      `no ${what} at ${path}.`,
      'Point modelDir at a local transformers.js model folder (config.json, tokenizer.json, onnx/model.onnx), e.g. one written by `optimum-cli export onnx --model <name> <dir>`.',
    );
  }
}

/**
 * A pretrained text encoder the user has on disk, run through transformers.js
 * `feature-extraction` (onnxruntime-node, fully offline) as a **frozen** backbone, with a
 * trainable linear Matryoshka projection `z = pool(backbone(text)) W + b` to d dims on top. Only
 * `W` and `b` are variables, so any Matryoshka objective trains the projection alone.
 *
 * The backbone runs asynchronously and outside TF.js, so its pooled features are computed by
 * {@link prefetch} and cached per text (a frozen backbone gives a text the same features every
 * epoch); `encode` then reads the cache synchronously, as core's `Encoder` requires.
 * {@link backboneBatches} prefetches inside a `BatchSource`, so core's `Trainer` needs nothing else.
 *
 * @example
 * ```ts
 * const encoder = await OnnxBackboneEncoder.load({ modelDir: 'models/all-MiniLM-L6-v2', embeddingDim: 128, random: createRandom(0) });
 * await encoder.prefetch(['a cat', 'a dog']);
 * const z = encoder.encode(['a cat', 'a dog'], false); // [2, 128]; z[:, :m] is the m-dim embedding
 * ```
 */
export class OnnxBackboneEncoder implements Encoder<string[]> {
  readonly config: EncoderConfig;
  readonly weight: tf.Variable; // [H, d]
  readonly bias: tf.Variable; // [d]
  readonly #cache = new Map<string, Float32Array>();
  #extractor: FeatureExtractor | null;

  private constructor(
    extractor: FeatureExtractor,
    readonly modelDir: string,
    /** Size H of the backbone's pooled features. */
    readonly backboneDim: number,
    readonly embeddingDim: number,
    readonly pooling: BackbonePooling,
    readonly extractBatchSize: number,
    random: Random,
  ) {
    this.#extractor = extractor;
    this.config = { architecture: 'onnx-backbone', embeddingDim, modelDir, pooling, backboneDim };
    // Glorot-uniform, so the projection starts near an isometry of the pooled features.
    const limit = Math.sqrt(6 / (backboneDim + embeddingDim));
    this.weight = tf.tidy(() =>
      tf.variable(tf.randomUniform([backboneDim, embeddingDim], -limit, limit, 'float32', nextSeed(random)), true),
    );
    this.bias = tf.tidy(() => tf.variable(tf.zeros([embeddingDim]), true));
  }

  /** Opens the model folder offline (no network, no cache writes) and sizes the projection from one probe text. */
  static async load(options: OnnxBackboneOptions): Promise<OnnxBackboneEncoder> {
    const { embeddingDim } = options;
    const pooling = options.pooling ?? 'mean';
    const extractBatchSize = options.extractBatchSize ?? 64;
    if (!Number.isInteger(embeddingDim) || embeddingDim < 1)
      throw new MrlError('invalid-argument', `embeddingDim must be a positive integer, got ${embeddingDim}.`);
    if (pooling !== 'mean' && pooling !== 'cls')
      throw new MrlError('invalid-argument', `pooling must be 'mean' or 'cls', got '${String(pooling)}'.`);
    if (!Number.isInteger(extractBatchSize) || extractBatchSize < 1) {
      throw new MrlError('invalid-argument', `extractBatchSize must be a positive integer, got ${extractBatchSize}.`);
    }
    const dir = resolve(options.modelDir);
    await requirePath(dir, 'model folder', 'dir');
    await requirePath(join(dir, 'config.json'), 'config.json', 'file');
    await requirePath(join(dir, 'tokenizer.json'), 'tokenizer.json', 'file');
    await requirePath(join(dir, 'onnx', 'model.onnx'), 'ONNX model', 'file');
    const { env, pipeline } = await import('@huggingface/transformers');
    // Offline: the model id is the folder's name under localModelPath; nothing is fetched or cached.
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${dirname(dir)}/`;
    let extractor: FeatureExtractor;
    try {
      extractor = (await pipeline('feature-extraction', basename(dir), {
        local_files_only: true,
        device: 'cpu', // onnxruntime-node's CPU provider, shipped inside the npm package
        dtype: 'fp32', // onnx/model.onnx (not model_quantized.onnx)
      })) as unknown as FeatureExtractor;
    } catch (cause) {
      throw new MrlError(
        'corrupt-file',
        `transformers.js could not load the model at ${dir}: ${(cause as Error).message}`,
        'Check that onnx/model.onnx is a valid fp32 ONNX export of the model in config.json.',
        { cause },
      );
    }
    const probe = await extractor(['probe'], { pooling: pooling === 'cls' ? 'cls' : 'mean', normalize: false });
    const backboneDim = probe.dims.at(-1)!;
    return new OnnxBackboneEncoder(
      extractor,
      dir,
      backboneDim,
      embeddingDim,
      pooling,
      extractBatchSize,
      options.random,
    );
  }

  /** Number of texts whose backbone features are cached. */
  get cachedTexts(): number {
    return this.#cache.size;
  }

  /** Runs the frozen backbone on the texts not yet cached and caches their pooled features [H]. */
  async prefetch(texts: readonly string[]): Promise<void> {
    const extractor = this.#extractor;
    if (extractor === null) throw new MrlError('invalid-argument', 'this OnnxBackboneEncoder has been disposed.');
    const missing = [...new Set(texts.filter((t) => !this.#cache.has(t)))];
    for (let start = 0; start < missing.length; start += this.extractBatchSize) {
      const chunk = missing.slice(start, start + this.extractBatchSize);
      const out = await extractor(chunk, { pooling: this.pooling === 'cls' ? 'cls' : 'mean', normalize: false });
      const data = Float32Array.from(out.data);
      chunk.forEach((t, i) => this.#cache.set(t, data.slice(i * this.backboneDim, (i + 1) * this.backboneDim)));
    }
  }

  /** Pooled backbone features [N, H] of texts already prefetched. */
  features(texts: readonly string[]): tf.Tensor2D {
    const out = new Float32Array(texts.length * this.backboneDim);
    texts.forEach((t, i) => {
      const row = this.#cache.get(t);
      if (row === undefined) {
        throw new MrlError(
          'invalid-argument',
          `no backbone features for the text "${t.slice(0, 60)}".`,
          'Call `await encoder.prefetch(texts)` before encode (backboneBatches does it per batch).',
        );
      }
      out.set(row, i * this.backboneDim);
    });
    return tf.tensor2d(out, [texts.length, this.backboneDim]);
  }

  /** [N] texts -> [N, d]: the frozen features (constants to the tape) times the trainable projection. */
  encode(texts: string[], _training: boolean): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(this.features(texts), this.weight as tf.Tensor2D), this.bias) as tf.Tensor2D);
  }

  /** Drops the cached features (the backbone stays loaded). */
  clearCache(): void {
    this.#cache.clear();
  }

  /** The projection only: the backbone's weights live in onnxruntime and are never trained. */
  variables(): VariableMap {
    return new Map([
      ['projection/w', this.weight],
      ['projection/b', this.bias],
    ]);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
    this.#cache.clear();
    const extractor = this.#extractor;
    this.#extractor = null;
    void extractor?.dispose();
  }
}

/**
 * A `BatchSource` of texts and class labels for an {@link OnnxBackboneEncoder}: each batch first
 * prefetches its texts' backbone features (a cache hit after the first epoch), so core's
 * `Trainer` with `MatryoshkaModel` + `ClassificationObjective` trains the projection.
 */
export function backboneBatches(
  encoder: OnnxBackboneEncoder,
  texts: readonly string[],
  labels: ArrayLike<number>,
): BatchSource<SupervisedBatch<string[], { labels: tf.Tensor1D }>> {
  if (texts.length !== labels.length)
    throw new MrlError('invalid-argument', `got ${texts.length} texts but ${labels.length} labels; they must pair up.`);
  return {
    size: texts.length,
    batch: async (indices) => {
      const batchTexts = [...indices].map((i) => texts[i]!);
      await encoder.prefetch(batchTexts);
      const target = {
        labels: tf.tensor1d(
          [...indices].map((i) => labels[i]!),
          'int32',
        ),
      };
      return { input: batchTexts, target, size: indices.length, dispose: () => target.labels.dispose() };
    },
  };
}

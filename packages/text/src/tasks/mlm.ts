import {
  createRandom,
  formatTable,
  MatryoshkaLoss,
  MrlError,
  percent,
  Trainer,
  type RunContext,
  type RunReport,
  type BatchSource,
  type RunTable,
} from '@mrl/core';
import { packagedCorpus, PACKAGED_CORPORA } from '../corpora.js';
import { readRecords } from '../data/records.js';
import { textOf } from '../data/source.js';
import type { TextFitOptions } from '../fit.js';
import { maskTokens, mlmAccuracy, mlmBatch, MlmModel, TiedMlmObjective, type MlmBatch } from '../mlm.js';
import { padRows, type TextTokenizer } from '../tokenizer/tokenizer.js';
import { layerDecayScales, resolveEncoder, saveTextModel, trainerOptions } from './embedder.js';

/** Yields from several streams in turn, one item each, until all are exhausted. */
async function* interleave<T>(streams: AsyncIterator<T>[]): AsyncGenerator<T> {
  const live = [...streams];
  while (live.length > 0) {
    for (let i = 0; i < live.length; i++) {
      const next = await live[i]!.next();
      if (next.done === true) {
        live.splice(i, 1);
        i -= 1;
      } else yield next.value;
    }
  }
}

/** The texts of one user file for MLM: any record format, UTF-8 and field checked, the line named on error. */
async function* fileTexts(path: string, options: TextFitOptions): AsyncGenerator<string> {
  const field = options.textField ?? 'text';
  for await (const { fields, line } of readRecords(path)) {
    yield textOf(
      fields,
      field,
      { path, line },
      {
        ...(options.maxTextChars === undefined ? {} : { maxTextChars: options.maxTextChars }),
        ...(options.longText === undefined ? {} : { longText: options.longText }),
      },
    );
  }
}

async function takeTexts(options: TextFitOptions, count: number): Promise<string[]> {
  const corpora = options.corpora ?? [...PACKAGED_CORPORA];
  const streams: AsyncIterator<string>[] = corpora.map((c) => packagedCorpus([c], options.wordnetDir));
  for (const file of options.textFiles ?? []) streams.push(fileTexts(file, options));
  const out: string[] = [];
  for await (const text of interleave(streams)) {
    if (text.split(' ').length < 5) continue;
    out.push(text);
    if (out.length >= count) break;
  }
  return out;
}

/** Training batches: a fresh seeded masking of each batch (BERT's 80/10/10 at `maskProbability`). */
function mlmSource(
  trainIds: Int32Array[],
  tokenizer: TextTokenizer,
  options: TextFitOptions,
  seed: number,
): BatchSource<MlmBatch> {
  const maxLength = options.maxLength ?? 32;
  let draw = 0;
  return {
    size: trainIds.length,
    batch: (indices: Int32Array): MlmBatch => {
      const encoded = padRows(
        [...indices].map((i) => [...trainIds[i]!]),
        maxLength,
        tokenizer.special,
      );
      draw += 1;
      const masking = options.maskProbability === undefined ? {} : { probability: options.maskProbability };
      return mlmBatch(
        encoded,
        maskTokens(encoded, tokenizer.special, tokenizer.vocabSize, createRandom(seed, 3, draw), masking),
      );
    },
  };
}

/**
 * Held-out sentences with a fixed masking, so every dim is scored on the same tokens. Every
 * chosen token becomes [MASK]: with BERT's 10% kept tokens in the score, an untrained tied model
 * already gets ~10% by copying its input, which says nothing about context.
 */
function heldOutBatches(evalIds: Int32Array[], tokenizer: TextTokenizer, maxLength: number, seed: number): MlmBatch[] {
  const out: MlmBatch[] = [];
  const random = createRandom(seed, 4);
  for (let start = 0; start < evalIds.length; start += 64) {
    const encoded = padRows(
      evalIds.slice(start, start + 64).map((r) => [...r]),
      maxLength,
      tokenizer.special,
    );
    out.push(
      mlmBatch(
        encoded,
        maskTokens(encoded, tokenizer.special, tokenizer.vocabSize, random, { maskFraction: 1, randomFraction: 0 }),
      ),
    );
  }
  return out;
}

/** Context-free reference: the share of held-out masked tokens that are the most frequent training token. */
async function mostFrequentToken(
  trainIds: Int32Array[],
  evalBatches: MlmBatch[],
): Promise<{ top: number; share: number }> {
  const counts = new Map<number, number>();
  for (const row of trainIds) for (const id of row) counts.set(id, (counts.get(id) ?? 0) + 1);
  const top = [...counts].reduce((a, b) => (b[1] > a[1] ? b : a), [-1, 0])[0];
  let hits = 0;
  let masked = 0;
  for (const b of evalBatches) {
    hits += [...(await b.target.labels.data())].filter((id) => id === top).length;
    masked += b.target.labels.size;
  }
  return { top, share: hits / Math.max(1, masked) };
}

/** The corpus sentences: the first tenth (at most `testLimit`) held out, the rest for training. */
async function mlmTexts(options: TextFitOptions, context: RunContext): Promise<{ train: string[]; test: string[] }> {
  const trainCount = options.trainLimit ?? 20_000;
  const evalCount = options.testLimit ?? 1_000;
  const t0 = performance.now();
  const texts = await takeTexts(options, trainCount + evalCount);
  if (texts.length < 2)
    throw new MrlError('invalid-argument', `the corpora gave only ${texts.length} usable sentences.`);
  const test = texts.slice(0, Math.min(evalCount, Math.floor(texts.length / 10)));
  const train = texts.slice(test.length);
  context.log(
    `corpus: ${train.length} training and ${test.length} held-out sentences in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { train, test };
}

/** Masked-LM pre-training on the packaged corpora and text files, scored per dim on held-out masked tokens. */
export async function fitMlm(options: TextFitOptions, context: RunContext): Promise<RunReport> {
  const maxLength = options.maxLength ?? 32;
  const texts = await mlmTexts(options, context);
  const { encoder, tokenizer } = await resolveEncoder(options, context, async () => texts.train);
  const encode = (t: string): Int32Array => Int32Array.from(tokenizer.encode(t, false).slice(0, maxLength - 2));
  const trainIds = texts.train.map(encode);
  const objective = new TiedMlmObjective(encoder.tokenEmbedding);
  const matryoshka = new MatryoshkaLoss(objective, {
    embeddingDim: encoder.embeddingDim,
    ...(options.dims ? { dims: options.dims } : {}),
    ...(options.minDim ? { minDim: options.minDim } : {}),
  });
  const model = new MlmModel(encoder, matryoshka);
  const fit = await new Trainer(model, mlmSource(trainIds, tokenizer, options, context.seed), {
    ...trainerOptions(options, context, 'mrl'),
    ...layerDecayScales(options, encoder, model),
  }).fit();
  const evalBatches = heldOutBatches(texts.test.map(encode), tokenizer, maxLength, context.seed);
  const dims = [...matryoshka.dims];
  const accuracy = await mlmAccuracy(encoder, objective, evalBatches, dims);
  const masked = evalBatches.reduce((s, b) => s + b.target.labels.size, 0);
  const { top, share: unigram } = await mostFrequentToken(trainIds, evalBatches);
  context.log(
    `most-frequent-token baseline (always '${tokenizer.decode([top])}'): ${percent(unigram)}% of the held-out masked tokens`,
  );
  evalBatches.forEach((b) => b.dispose());
  const runTable: RunTable = {
    data: `packaged corpora (${(options.corpora ?? [...PACKAGED_CORPORA]).join(', ')}${(options.textFiles ?? []).length > 0 ? ' + text files' : ''})`,
    model: options.model ?? 'bert-tiny',
    task: `mlm, top-1 on ${masked} held-out tokens replaced by [MASK] after ${fit.steps} steps`,
    embeddingDim: encoder.embeddingDim,
    metrics: [{ key: 'top1', header: 'masked-token acc %', kind: 'percent' }],
    series: [{ key: 'mrl', label: 'MRL', rows: dims.map((dim, j) => ({ dim, values: { top1: accuracy[j]! } })) }],
    references: [{ label: `most frequent token, always '${tokenizer.decode([top])}'`, values: { top1: unigram } }],
  };
  await saveTextModel(
    encoder,
    tokenizer,
    dims,
    dims.map((dim, j) => ({ dim, values: { 'masked-token acc': accuracy[j]! } })),
    options,
    context,
  );
  return {
    runTable,
    title: `text mlm: top-1 on ${masked} held-out tokens replaced by [MASK] (15%) after ${fit.steps} steps`,
    table: mlmTable(dims, accuracy, fit.lastParts),
    metrics: {
      task: 'mlm',
      steps: fit.steps,
      maskedTokens: masked,
      dims,
      accuracy,
      unigramBaseline: unigram,
      finalLoss: fit.finalLoss,
      vocabSize: tokenizer.vocabSize,
    },
  };
}

/** Accuracy per dim, relative to the full dim, and the last training loss of each prefix. */
function mlmTable(dims: number[], accuracy: number[], lastParts: Record<string, number>): string {
  const full = accuracy[accuracy.length - 1]!;
  const rows = dims.map((m, j) => ({
    m,
    acc: accuracy[j]!,
    rel: full > 0 ? accuracy[j]! / full : 0,
    loss: lastParts[`loss/${m}`],
  }));
  return formatTable(rows, [
    { header: 'dim', value: (r) => String(r.m) },
    { header: 'masked-token acc %', value: (r) => percent(r.acc) },
    { header: 'vs full %', value: (r) => percent(r.rel) },
    { header: 'train loss', value: (r) => r.loss, digits: 3 },
  ]);
}

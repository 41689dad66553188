import { ContainerModule } from 'inversify';
import { ENCODER_REGISTRATION, type Encoder, type EncoderRegistration } from '@mrl/core';
import { BERT_CONFIGS, BertEncoder, bertConfig, type BertConfig } from './bert.js';

/** One registration per named BERT config, buildable by name from the CLI or user code. */
export const TEXT_ENCODER_REGISTRATIONS: readonly EncoderRegistration[] = Object.entries(BERT_CONFIGS).map(
  ([name, defaults]) => ({
    name,
    modality: 'text',
    description: `BERT encoder, d=${defaults.embeddingDim}, ${defaults.numLayers} layers, ${defaults.numHeads} heads (set vocabSize to the tokenizer's)`,
    defaults,
    create: (config, random) =>
      new BertEncoder(bertConfig(name, config as Partial<BertConfig>), random) as Encoder<unknown>,
  }),
);

/** Registers the text encoders (`bert-tiny`, `bert-mini`, `bert-small`) under `ENCODER_REGISTRATION`. */
export const textModule = new ContainerModule((options) => {
  for (const registration of TEXT_ENCODER_REGISTRATIONS)
    options.bind<EncoderRegistration>(ENCODER_REGISTRATION).toConstantValue(registration);
});

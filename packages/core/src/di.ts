import { ContainerModule } from 'inversify';
import type { Encoder, EncoderConfig } from './encoder.js';
import { MlpEncoder, type MlpConfig } from './mlp.js';
import type { Random } from './rng.js';

/** Which data an encoder consumes. */
export type Modality = 'vision' | 'text' | 'align' | 'tabular';

/**
 * A named architecture config that the CLI and user code can build by name (timm's
 * `@register_model`, open_clip's model configs). Bind one under `ENCODER_REGISTRATION`.
 */
export interface EncoderRegistration<Input = unknown> {
  /** Name used on the command line, e.g. `resnet18-cifar`. */
  name: string;
  modality: Modality;
  description: string;
  /** The config with defaults; fields given by the user override it. */
  defaults: EncoderConfig;
  create(config: EncoderConfig, random: Random): Encoder<Input>;
}

/** DI tokens of the core package. */
export const ENCODER_REGISTRATION = Symbol.for('mrl/EncoderRegistration');
export const OBJECTIVE_REGISTRATION = Symbol.for('mrl/ObjectiveRegistration');

/** Registers the core encoders (the MLP). */
export const coreModule = new ContainerModule((options) => {
  options.bind<EncoderRegistration>(ENCODER_REGISTRATION).toConstantValue({
    name: 'mlp',
    modality: 'vision',
    description: 'multi-layer perceptron on flattened inputs (784-512-256-d by default)',
    defaults: { architecture: 'mlp', embeddingDim: 64, inputDim: 784, hidden: [512, 256] } satisfies MlpConfig,
    create: (config, random) => new MlpEncoder(config as MlpConfig, random) as Encoder<unknown>,
  });
});

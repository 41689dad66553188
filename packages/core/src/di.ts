import { ContainerModule } from 'inversify';
import type { Encoder, EncoderConfig } from './encoder.js';
import { SeparateHeads, SharedHead } from './heads.js';
import { MlpEncoder, type MlpConfig } from './mlp.js';
import { ClassificationObjective, type PrefixObjective } from './objective.js';
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

/** What a classification objective is built from. */
export interface ClassificationObjectiveConfig {
  embeddingDim: number;
  numClasses: number;
  /** Nesting dims; the separate heads need them, the shared head serves any. */
  dims: readonly number[];
}

/**
 * A named objective (the adapter half of the Matryoshka loss) that code and plug-ins can build
 * by name. Bind one under `OBJECTIVE_REGISTRATION`.
 */
export interface ObjectiveRegistration<Config = ClassificationObjectiveConfig, Target = unknown> {
  name: string;
  /** The data it trains on, or `any` for objectives that only see embeddings and labels. */
  modality: Modality | 'any';
  description: string;
  create(config: Config, random: Random): PrefixObjective<Target>;
}

/** DI tokens of the core package. */
export const ENCODER_REGISTRATION = Symbol.for('mrl/EncoderRegistration');
export const OBJECTIVE_REGISTRATION = Symbol.for('mrl/ObjectiveRegistration');

/** Registers the core encoder (the MLP) and the classification objectives (MRL and MRL-E). */
export const coreModule = new ContainerModule((options) => {
  options.bind<ObjectiveRegistration>(OBJECTIVE_REGISTRATION).toConstantValue({
    name: 'classification',
    modality: 'any',
    description: 'softmax cross-entropy per nesting dim, one linear head per dim (MRL)',
    create: (config, random) =>
      new ClassificationObjective(new SeparateHeads(config.embeddingDim, config.numClasses, config.dims, random)),
  });
  options.bind<ObjectiveRegistration>(OBJECTIVE_REGISTRATION).toConstantValue({
    name: 'classification-shared',
    modality: 'any',
    description: 'softmax cross-entropy per nesting dim, one shared head sliced to each prefix (MRL-E)',
    create: (config, random) =>
      new ClassificationObjective(new SharedHead(config.embeddingDim, config.numClasses, random)),
  });
  options.bind<EncoderRegistration>(ENCODER_REGISTRATION).toConstantValue({
    name: 'mlp',
    modality: 'vision',
    description: 'multi-layer perceptron on flattened inputs (784-512-256-d by default)',
    defaults: { architecture: 'mlp', embeddingDim: 64, inputDim: 784, hidden: [512, 256] } satisfies MlpConfig,
    create: (config, random) => new MlpEncoder(config as MlpConfig, random) as Encoder<unknown>,
  });
});

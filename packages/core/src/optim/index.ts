import { MrlError } from '../errors.js';
import { AdamWOptimizer } from './adamw.js';
import type { Optimizer, OptimizerConfig } from './optimizer.js';
import { SgdOptimizer } from './sgd.js';

export function createOptimizer(config: OptimizerConfig): Optimizer {
  switch (config.type) {
    case 'sgd':
      return new SgdOptimizer(config);
    case 'adamw':
      return new AdamWOptimizer(config);
    default:
      throw new MrlError(
        'invalid-config',
        `optimizer.type '${(config as { type: unknown }).type}' is not known.`,
        "Use 'sgd' or 'adamw'.",
      );
  }
}

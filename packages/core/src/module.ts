import type * as tf from '@tensorflow/tfjs';

/** Named variables in a stable order; names are unique within a model and stable across runs. */
export type VariableMap = Map<string, tf.Variable>;

/** Anything that owns variables: encoders, heads, objectives, whole models. */
export interface HasVariables {
  /** Every variable to checkpoint, trainable or not (e.g. batch-norm running stats). */
  variables(): VariableMap;
}

/** The trainable subset of a variable map, in the map's order. */
export function trainableVariables(owner: HasVariables): tf.Variable[] {
  return [...owner.variables().values()].filter((v) => v.trainable);
}

/** Joins the variable maps of several owners under name prefixes (`encoder/...`, `head/...`). */
export function prefixVariables(parts: Record<string, HasVariables>): VariableMap {
  const out: VariableMap = new Map();
  for (const [prefix, owner] of Object.entries(parts)) {
    for (const [name, variable] of owner.variables()) out.set(`${prefix}/${name}`, variable);
  }
  return out;
}

/** Number of scalar parameters in the trainable variables. */
export function parameterCount(owner: HasVariables): number {
  return trainableVariables(owner).reduce((sum, v) => sum + v.size, 0);
}

import * as tf from '@tensorflow/tfjs';
import {
  batchNormTraining,
  gelu,
  layerNorm,
  MrlError,
  nextSeed,
  runningMoments,
  type Random,
  type VariableMap,
} from '@mrl/core';

/** A piece of a model that owns variables under local names (`w`, `bn/gamma`, ...). */
export interface Module {
  variables(): VariableMap;
}

/** Adds `module`'s variables to `out` under `prefix/`. */
export function addVariables(out: VariableMap, prefix: string, module: Module): void {
  for (const [name, variable] of module.variables()) out.set(`${prefix}/${name}`, variable);
}

export function disposeModule(module: Module): void {
  for (const variable of module.variables().values()) variable.dispose();
}

/**
 * A variable from an initial value, without keeping that value alive: `tf.variable(t)` shares
 * `t`'s data and leaves `t` itself to be disposed.
 */
export function makeVariable(initial: tf.Tensor, trainable = true): tf.Variable {
  const variable = tf.variable(initial, trainable);
  initial.dispose();
  return variable;
}

function positiveInteger(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new MrlError('invalid-config', `${what} must be a positive integer, got ${value}.`);
}

/** A dense layer y = x W + b on the last axis. */
export class Linear implements Module {
  readonly w: tf.Variable;
  readonly b: tf.Variable;

  constructor(
    readonly inputs: number,
    readonly outputs: number,
    random: Random,
    init: 'he' | 'xavier' | 'trunc02' = 'xavier',
  ) {
    positiveInteger(inputs, 'linear input width');
    positiveInteger(outputs, 'linear output width');
    const std = init === 'he' ? Math.sqrt(2 / inputs) : init === 'xavier' ? Math.sqrt(2 / (inputs + outputs)) : 0.02;
    this.w = makeVariable(tf.truncatedNormal([inputs, outputs], 0, std, 'float32', nextSeed(random)), true);
    this.b = makeVariable(tf.zeros([outputs]), true);
  }

  /** [..., inputs] -> [..., outputs] */
  apply(x: tf.Tensor): tf.Tensor {
    const shape = x.shape;
    const flat = tf.reshape(x, [-1, this.inputs]) as tf.Tensor2D;
    const y = tf.add(tf.matMul(flat, this.w as tf.Tensor2D), this.b);
    return tf.reshape(y, [...shape.slice(0, -1), this.outputs]);
  }

  variables(): VariableMap {
    return new Map([
      ['w', this.w],
      ['b', this.b],
    ]);
  }
}

/**
 * A 2-D convolution, NHWC, no bias (batch norm follows). He initialisation. Padding: 'same'
 * (TF's, asymmetric at stride 2), 'valid', or a number of zero rows/columns on every side
 * (PyTorch's `padding=`, which pretrained torchvision weights expect).
 */
export class Conv2d implements Module {
  readonly w: tf.Variable;

  constructor(
    readonly kernel: number,
    readonly inputs: number,
    readonly outputs: number,
    readonly stride: number,
    random: Random,
    readonly padding: 'same' | 'valid' | number = 'same',
  ) {
    positiveInteger(kernel, 'conv kernel size');
    positiveInteger(inputs, 'conv input channels');
    positiveInteger(outputs, 'conv output channels');
    positiveInteger(stride, 'conv stride');
    const fanIn = kernel * kernel * inputs;
    this.w = makeVariable(
      tf.truncatedNormal([kernel, kernel, inputs, outputs], 0, Math.sqrt(2 / fanIn), 'float32', nextSeed(random)),
      true,
    );
  }

  /** [N, H, W, inputs] -> [N, H/stride, W/stride, outputs] */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.conv2d(x, this.w as tf.Tensor4D, this.stride, this.padding);
  }

  variables(): VariableMap {
    return new Map([['w', this.w]]);
  }
}

/**
 * Batch normalisation over N, H, W (Ioffe & Szegedy 2015). Training mode normalises with the
 * batch statistics and updates the running mean / variance (non-trainable variables, saved with
 * the model); inference mode uses the running statistics.
 *
 * The running-stat update is an `assign` of values computed from the batch moments: it runs
 * inside the trainer's `tf.variableGrads` and contributes nothing to the loss, so it has no
 * gradient.
 */
export class BatchNorm implements Module {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;

  constructor(
    readonly channels: number,
    /** Weight of the new batch in the running average (PyTorch's `momentum`, default 0.1). */
    readonly momentum = 0.1,
    readonly epsilon = 1e-5,
    zeroGamma = false,
  ) {
    positiveInteger(channels, 'batch-norm channels');
    if (!(momentum > 0 && momentum <= 1))
      throw new MrlError('invalid-config', `batch-norm momentum must be in (0, 1], got ${momentum}.`);
    this.gamma = makeVariable(zeroGamma ? tf.zeros([channels]) : tf.ones([channels]), true);
    this.beta = makeVariable(tf.zeros([channels]), true);
    this.runningMean = makeVariable(tf.zeros([channels]), false);
    this.runningVar = makeVariable(tf.ones([channels]), false);
  }

  /**
   * [N, H, W, C] -> [N, H, W, C]; with `relu`, `tf.relu` of it (fused into the training kernels
   * where the backend has them: one pass less forward, three less backward).
   */
  apply(x: tf.Tensor4D, training: boolean, relu = false): tf.Tensor4D {
    if (!training) {
      return tf.tidy(() => {
        const y = tf.batchNorm4d(
          x,
          this.runningMean as tf.Tensor1D,
          this.runningVar as tf.Tensor1D,
          this.beta as tf.Tensor1D,
          this.gamma as tf.Tensor1D,
          this.epsilon,
        );
        return relu ? tf.relu(y) : y;
      });
    }
    const n = x.shape[0] * x.shape[1] * x.shape[2];
    // Core's op: its closed-form gradient flows through the batch moments too.
    return batchNormTraining(
      x,
      this.gamma as tf.Tensor1D,
      this.beta as tf.Tensor1D,
      this.epsilon,
      (mean, variance) =>
        tf.tidy(() => {
          const [runningMean, runningVar] = runningMoments(
            this.runningMean as tf.Tensor1D,
            this.runningVar as tf.Tensor1D,
            mean,
            variance,
            this.momentum,
            n,
          );
          this.runningMean.assign(runningMean);
          this.runningVar.assign(runningVar);
        }),
      relu,
    );
  }

  variables(): VariableMap {
    return new Map([
      ['gamma', this.gamma],
      ['beta', this.beta],
      ['running_mean', this.runningMean],
      ['running_var', this.runningVar],
    ]);
  }
}

/** Layer normalisation over the last axis (Ba et al. 2016). */
export class LayerNorm implements Module {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(
    readonly width: number,
    readonly epsilon = 1e-6,
  ) {
    positiveInteger(width, 'layer-norm width');
    this.gamma = makeVariable(tf.ones([width]), true);
    this.beta = makeVariable(tf.zeros([width]), true);
  }

  apply(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, this.epsilon);
  }

  variables(): VariableMap {
    return new Map([
      ['gamma', this.gamma],
      ['beta', this.beta],
    ]);
  }
}

/** GELU, tanh form: core's `gelu` (one implementation for ViT and BERT). */
export { gelu };

// Why: TF.js keeps every tensor a gradient function saved (the forward activations) and every
// intermediate gradient until the whole backward pass ends, so a training step peaks at the end
// of its backward pass with all activations and all their gradients alive at once. PyTorch
// frees each saved activation as soon as its node's gradient has run, and so can we: the engine
// walks the tape in reverse, one node at a time, calling each node's gradient function and then
// the closures it returns for its inputs. When the next node's gradient function is called, the
// previous node is finished, so its saved tensors (clones the engine owns, one set per node) and
// the gradients flowing into its outputs can be freed then. The engine frees both at the end
// anyway; a second dispose is a no-op.
//
// Some shipped gradients save a kernel's inputs only to read their shapes (Add and Sub for the
// broadcast reduction, Reshape, Slice, Concat, Sum...): TF.js saves a clone of each input, which
// keeps its whole buffer alive until the backward pass reaches the node. A bias add keeps the
// product before the bias, a residual add both branches: on ViT-tiny that was 74 of the 405 MiB
// a step held at its peak. For those kernels the clones are disposed as soon as the node is
// recorded; a disposed tensor keeps its shape, which is all those gradients read.
//
// What is never freed early: anything created before the backward pass began (the caller's dy,
// variables, forward tensors), a gradient object that a gradient function handed out twice (it
// may be stored under another tensor as well), a saved tensor handed out as a gradient, and the
// gradients of the requested xs.
import * as tf from '@tensorflow/tfjs';

/** The parts of TF.js's engine that this hooks (tfjs-core 4.x `engine.ts`). */
interface TapeNode {
  kernelName: string;
  saved?: tf.Tensor[];
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  addTapeNode(...args: unknown[]): void;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor | null, allowNoGradients?: boolean): unknown;
  constructor: { nextTensorId: number };
}

interface Pass {
  /** Ids of the tensors whose gradients the caller asked for. */
  xs: Set<number>;
  /** Tensors with ids below this existed before the backward pass. */
  firstId: number | null;
  /** How many times each gradient object was handed out by a gradient function. */
  handedOut: Map<tf.Tensor, number>;
  /** The node whose gradient ran last: freed when the next one starts. */
  previous: { saved: tf.Tensor[]; dys: tf.Tensor[] } | null;
}

const INSTALLED = Symbol.for('mrl/freeDuringBackward');

/**
 * Kernels whose shipped gradient (tfjs-core 4.22 `gradients/*_grad.ts`) reads nothing of its saved
 * inputs but their shapes. Checked against the gradient registered when the hooks are installed,
 * so a gradient someone registers over one of these keeps its saved inputs.
 */
export const SHAPE_ONLY_SAVED_KERNELS: readonly string[] = [
  'Add',
  'Sub',
  'Reshape',
  'ExpandDims',
  'Slice',
  'PadV2',
  'Concat',
  'Pack',
  'Sum',
  'Mean',
];
/** Whether passes free early; the hooks, once installed, stay and check this. */
let enabled = false;

function finish(pass: Pass): void {
  const node = pass.previous;
  if (node === null || pass.firstId === null) return;
  pass.previous = null;
  for (const t of node.saved) if (!pass.handedOut.has(t)) t.dispose();
  for (const dy of node.dys) {
    if (dy.id >= pass.firstId && (pass.handedOut.get(dy) ?? 0) <= 1 && !(dy instanceof tf.Variable)) dy.dispose();
  }
}

/**
 * Makes TF.js free each tape node's saved tensors, and the gradients of its outputs, as soon as
 * the backward pass has moved past that node, instead of all at the end: the peak memory of a
 * training step drops from "all activations plus all their gradients" toward what the
 * remaining part of the backward pass still needs. The inputs that a kernel's gradient saves only
 * for their shapes (`SHAPE_ONLY_SAVED_KERNELS`: a bias or residual add's operands) are released
 * when the forward pass records the kernel. Gradients are unchanged (the same kernels run
 * in the same order). Higher-order gradients (a gradient taken inside another) are left alone.
 * Idempotent; `freeDuringBackward(false)` turns it off again. Applies to the engine of the
 * `@tensorflow/tfjs` this package resolves. `initBackend` turns it on.
 *
 * @example
 * ```ts
 * freeDuringBackward();
 * const { value, grads } = tf.variableGrads(() => loss());
 * ```
 */
export function freeDuringBackward(on = true): void {
  enabled = on;
  const engine = tf.engine() as unknown as EngineInternals & Record<symbol, unknown>;
  if (engine[INSTALLED] === true) return;
  engine[INSTALLED] = true;
  let pass: Pass | null = null;
  const shapeOnly = new Map(SHAPE_ONLY_SAVED_KERNELS.map((name) => [name, tf.getGradient(name)]));
  const gradients = engine.gradients;
  engine.gradients = function (this: EngineInternals, f, xs, dy, allowNoGradients) {
    if (!enabled) return gradients.call(this, f, xs, dy, allowNoGradients);
    if (pass !== null || this.state.gradientDepth !== 0) {
      // A gradient taken inside a gradient function or a recorded forward pass: run as shipped.
      const outer = pass;
      pass = null;
      try {
        return gradients.call(this, f, xs, dy, allowNoGradients);
      } finally {
        pass = outer;
      }
    }
    const mine: Pass = { xs: new Set(xs.map((x) => x.id)), firstId: null, handedOut: new Map(), previous: null };
    pass = mine;
    try {
      return gradients.call(this, f, xs, dy, allowNoGradients);
    } finally {
      finish(mine);
      pass = null;
    }
  };
  const addTapeNode = engine.addTapeNode;
  engine.addTapeNode = function (this: EngineInternals, ...args: unknown[]) {
    addTapeNode.apply(this, args);
    const tape = this.state.activeTape;
    const node = tape?.[tape.length - 1];
    if (enabled && node !== undefined && node.saved !== undefined && node.saved.length > 0) {
      const shipped = shapeOnly.get(node.kernelName);
      if (shipped !== undefined && shipped === tf.getGradient(node.kernelName)) {
        for (const t of node.saved) t.dispose();
      }
    }
    const gradient = node?.gradient;
    if (node === undefined || gradient === undefined) return;
    node.gradient = (dys) => {
      const current = pass;
      // Only the outermost backward pass, and only once its forward tape is closed.
      if (current === null || this.state.gradientDepth !== 0) return gradient(dys);
      current.firstId ??= this.constructor.nextTensorId;
      finish(current);
      const closures = gradient(dys);
      current.previous = {
        saved: node.saved ?? [],
        dys: dys.filter((dy, i): dy is tf.Tensor => dy !== null && !current.xs.has(node.outputs[i]?.id ?? -1)),
      };
      const counted: Record<string, () => tf.Tensor> = {};
      for (const [name, closure] of Object.entries(closures)) {
        counted[name] = () => {
          const dx = closure();
          current.handedOut.set(dx, (current.handedOut.get(dx) ?? 0) + 1);
          return dx;
        };
      }
      return counted;
    };
  };
}

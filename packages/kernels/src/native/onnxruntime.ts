// Why: wasm SIMD is 128 bits wide without FMA, so XNNPACK's GEMM and convolutions top out near
// 17-28 GFLOP/s on our machines, while native code with AVX2/AVX-512 FMA runs 2-5x that on one
// thread. The npm registry ships such kernels prebuilt: ONNX Runtime's MLAS inside
// `onnxruntime-node` (its CPU binary is in the package; only its CUDA extras download at
// install). Each operation is a one-node graph (plus layout transposes), loaded once per
// attribute set; it then runs synchronously on views of the wasm heap (the binding wraps typed
// arrays without copying, the output included). Convolutions run MLAS's direct NCHWc kernels
// where those are faster, through ONNX Runtime's contrib ops with the trained filter reordered
// inside the graph (its optimiser only does that for constant filters): see nchwcConvModel.
import { createRequire } from 'node:module';
import { MrlError } from '../errors.js';
import { loadOneDnnConvolutions } from './onednn.js';
import { loadOneDnnBatchNorm, type NativeBatchNorm } from './onednn_batch_norm.js';
import { loadOneDnnMatMul } from './onednn_matmul.js';
import { loadOneDnnPrefixCe, type OneDnnPrefixCe } from './onednn_prefix_ce.js';
import { loadOneDnnPrefixCeFew, type OneDnnPrefixCeFew } from './onednn_prefix_few.js';
import { loadOneDnnRandom, type NativeRandom } from './onednn_random.js';
import { loadOneDnnUpdates, type NativeUpdates } from './onednn_updates.js';
import { initializer, node, ONNX_FLOAT, ONNX_INT32, ONNX_INT64, onnxModel, valueInfo } from '../onnx/proto.js';
import type { ProtoField } from '../onnx/proto.js';

/** Spatial attributes of an NHWC convolution; `pads` are [top, left, bottom, right]. */
export interface ConvGeometry {
  strides: readonly [number, number];
  dilations: readonly [number, number];
  pads: readonly [number, number, number, number];
}

/** A float32 or int32 array with its shape, for {@link NativeKernels.graph}. */
export interface NativeArray {
  data: Float32Array | Int32Array;
  shape: readonly number[];
}

/** Native float32 kernels over arrays that the caller owns; outputs are written in place. */
export interface NativeKernels {
  /** What runs them, for the backend's log line. */
  readonly detail: string;
  /**
   * Training-mode batch norm on the oneDNN addon's threads (`./onednn_batch_norm.ts`), where the
   * addon is built; absent, it runs on the wasm backend's SIMD kernels (one thread).
   */
  readonly batchNorm?: NativeBatchNorm;
  /**
   * The SGD-momentum and AdamW updates on the same addon's threads (`./onednn_updates.ts`), where
   * it is built; absent, they run on the wasm backend's SIMD kernels (one thread).
   */
  readonly updates?: NativeUpdates;
  /**
   * Dropout masks on the same addon's threads (`./onednn_random.ts`), where it is built; absent,
   * they are drawn in JavaScript (the same bits).
   */
  readonly random?: NativeRandom;
  /**
   * `y = op(a) @ op(b)`, op transposing the last two axes when asked, with numpy broadcasting
   * over the leading (batch) axes; writes `y` in place. Shapes are checked by the runtime.
   */
  matMul(
    a: Float32Array,
    aShape: readonly number[],
    b: Float32Array,
    bShape: readonly number[],
    y: Float32Array,
    yShape: readonly number[],
    transposeA: boolean,
    transposeB: boolean,
  ): void;
  /** `y = conv2d(x, filter)`: x [N, H, W, C], filter [fh, fw, C, Cout], y [N, Ho, Wo, Cout]. */
  conv2d(
    x: Float32Array,
    xShape: readonly number[],
    filter: Float32Array,
    filterShape: readonly number[],
    y: Float32Array,
    yShape: readonly number[],
    geometry: ConvGeometry,
  ): void;
  /** The input gradient of {@link conv2d}: `dx` [N, H, W, C] from `dy` [N, Ho, Wo, Cout]. */
  conv2dBackpropInput(
    dy: Float32Array,
    dyShape: readonly number[],
    filter: Float32Array,
    filterShape: readonly number[],
    dx: Float32Array,
    dxShape: readonly number[],
    geometry: ConvGeometry,
  ): void;
  /**
   * The filter gradient of {@link conv2d}: `dw` [fh, fw, C, Cout] from `x` [N, H, W, C] and `dy`
   * [N, Ho, Wo, Cout]. `geometry.pads` must not be negative; the bottom and right pads may be
   * anything that covers the taps (the graph pads what the last taps read).
   */
  conv2dBackpropFilter(
    x: Float32Array,
    xShape: readonly number[],
    dy: Float32Array,
    dyShape: readonly number[],
    dw: Float32Array,
    dwShape: readonly number[],
    geometry: ConvGeometry,
  ): void;
  /**
   * Row-wise softmax cross-entropy of `logits` [N, C] against `labels` (N class ids, in range):
   * writes the softmax to `probs` [N, C] and each row's loss, `-log softmax[label]`, to
   * `rowLoss` [N], through a log-softmax (so tiny probabilities still give finite losses).
   */
  softmaxCrossEntropy(
    logits: Float32Array,
    shape: readonly [number, number],
    labels: Int32Array,
    probs: Float32Array,
    rowLoss: Float32Array,
  ): void;
  /** `y = x * scale` elementwise (same length). */
  scale(x: Float32Array, scale: number, y: Float32Array): void;
  /** `y = x * scale + z` elementwise (same length). */
  scaleAdd(x: Float32Array, scale: number, z: Float32Array, y: Float32Array): void;
  /**
   * `y = op(a) @ op(b) + c` for 2-D `a`, `b`; `c` is [M, N] or a row [N] broadcast over rows,
   * or null for none.
   */
  gemm(
    a: Float32Array,
    aShape: readonly [number, number],
    b: Float32Array,
    bShape: readonly [number, number],
    c: Float32Array | null,
    cShape: readonly number[],
    y: Float32Array,
    transposeA: boolean,
    transposeB: boolean,
  ): void;
  /** Concatenates `inputs` (of `shapes`) along `axis` into `y`. */
  concat(
    inputs: readonly Float32Array[],
    shapes: readonly (readonly number[])[],
    axis: number,
    y: Float32Array,
    yShape: readonly number[],
  ): void;
  /** `y = reduceSum(x, axes)` (keepdims off): `y` holds the kept axes in order. */
  sum(x: Float32Array, shape: readonly number[], axes: readonly number[], y: Float32Array): void;
  /** Splits `x` of `shape` along `axis` into `outputs` of the given sizes (in order). */
  split(
    x: Float32Array,
    shape: readonly number[],
    axis: number,
    sizes: readonly number[],
    outputs: readonly Float32Array[],
  ): void;
  /**
   * Runs a graph of the caller's (`model` is built once per `key`) on `feeds`, writing its
   * outputs in place into `fetches`: for fused kernels whose graphs live beside them.
   */
  graph(
    key: string,
    model: () => Uint8Array,
    feeds: Readonly<Record<string, NativeArray>>,
    fetches: Readonly<Record<string, NativeArray>>,
  ): void;
  /**
   * The chunked Matryoshka softmax cross-entropy's passes on oneDNN (`./onednn_prefix_ce.ts`),
   * present where the products run on oneDNN and the addon has them; absent, the chunked kernels
   * run their ONNX Runtime graphs through {@link graph}.
   */
  readonly prefixCe?: OneDnnPrefixCe;
  /**
   * The Matryoshka softmax cross-entropy of a head with at most `PREFIX_CE_FEW_MAX_CLASSES`
   * classes, loss and gradient one addon call each (`./onednn_prefix_few.ts`), where the addon has
   * it; absent, `../wasm/native_prefix_softmax.ts` runs a product and a softmax per nesting dim.
   */
  readonly prefixCeFew?: OneDnnPrefixCeFew;
}

interface OrtTensorConstructor {
  new (type: 'float32' | 'int32', data: Float32Array | Int32Array, dims: readonly number[]): unknown;
}
interface OrtBigIntTensorConstructor {
  new (type: 'int64', data: BigInt64Array, dims: readonly number[]): unknown;
}
interface OrtNativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): unknown;
}
interface OrtBindingModule {
  binding: { InferenceSession: new () => OrtNativeSession };
  initOrt(): void;
}

const IO = [valueInfo(11, 'A', ONNX_FLOAT), valueInfo(11, 'B', ONNX_FLOAT), valueInfo(12, 'Y', ONNX_FLOAT)];
const OPSETS = { '': 13, 'com.microsoft': 1 };

/** `Y = op(A) @ op(B)` over inputs of any rank, from ONNX Runtime's contrib op set. */
function fusedMatMulModel(transposeA: boolean, transposeB: boolean): Uint8Array {
  return onnxModel(
    'mrl-matmul',
    [
      node(
        'FusedMatMul',
        ['A', 'B'],
        ['Y'],
        { transA: transposeA ? 1 : 0, transB: transposeB ? 1 : 0 },
        'com.microsoft',
      ),
      ...IO,
    ],
    OPSETS,
  );
}

/** An int64 initializer (a constant shape or Slice argument). */
function int64Initializer(name: string, values: readonly (number | bigint)[]): ProtoField {
  return initializer(name, [values.length], ONNX_INT64, new Uint8Array(BigInt64Array.from(values, BigInt).buffer));
}

/**
 * `Y = op(A, B)` for ONNX's NCHW `Conv` (B the filter) or `ConvTranspose` (the gradient of Conv
 * with respect to its input), with A and Y in TF.js's NHWC and B fed as [fh*fw*Cin, Cout] (TF.js's
 * [fh, fw, Cin, Cout], flattened). The transposes run in ONNX Runtime, which is faster at them than
 * the wasm backend. The filter goes to [Cout, Cin, fh, fw] by two transposes that each move one
 * axis (ONNX Runtime runs those as blocked 2-D transposes); the one 4-D permutation they replace
 * took 18 of 30 ms of a [16, 4, 4, 512] convolution (9.4 MB of filter), measured on one thread.
 * ConvTranspose reads [Cout, Cin, fh, fw] as [its Cin, its Cout, fh, fw], the layout it needs.
 */
function convModel(
  op: 'Conv' | 'ConvTranspose',
  geometry: ConvGeometry,
  outputPadding: readonly [number, number],
  kernel: readonly [number, number],
): Uint8Array {
  const [top, left, bottom, right] = geometry.pads;
  const attributes = {
    strides: [...geometry.strides],
    dilations: [...geometry.dilations],
    pads: [top, left, bottom, right],
    kernel_shape: [...kernel],
    ...(op === 'ConvTranspose' ? { output_padding: [...outputPadding] } : {}),
  };
  return onnxModel(
    `mrl-${op}`,
    [
      node('Transpose', ['A'], ['A_nchw'], { perm: [0, 3, 1, 2] }),
      node('Transpose', ['B'], ['B_t'], { perm: [1, 0] }), // [Cout, fh*fw*Cin]
      node('Reshape', ['B_t', 'taps_by_cin'], ['B_taps']), // [Cout, fh*fw, Cin]
      node('Transpose', ['B_taps'], ['B_cin'], { perm: [0, 2, 1] }), // [Cout, Cin, fh*fw]
      node('Reshape', ['B_cin', 'oihw'], ['B_oihw']), // [Cout, Cin, fh, fw]
      node(op, ['A_nchw', 'B_oihw'], ['Y_nchw'], attributes),
      node('Transpose', ['Y_nchw'], ['Y'], { perm: [0, 2, 3, 1] }),
      int64Initializer('taps_by_cin', [0, kernel[0] * kernel[1], -1]),
      int64Initializer('oihw', [0, 0, kernel[0], kernel[1]]),
      ...IO,
    ],
    OPSETS,
  );
}

/**
 * The input gradient of a stride-1 convolution as a forward `Conv`: dX = conv(dY, W'), W' the
 * filter rotated by 180 degrees with its channel axes swapped, `pads` = (f - 1) * dilation - the
 * forward pads (given, all >= 0). B is fed as [fh*fw, Cin, Cout]: reversing its first axis
 * rotates the taps, and one single-axis transpose gives Conv's [Cin, Cout, fh*fw]. ONNX Runtime's
 * ConvTranspose multiplies into a column buffer and scatters it back (col2im); the forward Conv
 * (im2col + SGEMM, the filter not being constant) does not: 3.5x faster on [16, 4, 4, 512],
 * 1.2-1.8x on ResNet-18's other layers. Wide inputs take {@link nchwcConvModel} instead.
 */
function flippedConvModel(
  dilations: readonly [number, number],
  pads: readonly [number, number, number, number],
  kernel: readonly [number, number],
): Uint8Array {
  return onnxModel(
    'mrl-conv-input-grad',
    [
      node('Transpose', ['A'], ['A_nchw'], { perm: [0, 3, 1, 2] }),
      node('Slice', ['B', 'rev_start', 'rev_end', 'rev_axis', 'rev_step'], ['B_rot']), // taps reversed
      node('Transpose', ['B_rot'], ['B_t'], { perm: [1, 2, 0] }), // [Cin, Cout, fh*fw]
      node('Reshape', ['B_t', 'oihw'], ['B_oihw']),
      node('Conv', ['A_nchw', 'B_oihw'], ['Y_nchw'], {
        strides: [1, 1],
        dilations: [...dilations],
        pads: [...pads],
        kernel_shape: [...kernel],
      }),
      node('Transpose', ['Y_nchw'], ['Y'], { perm: [0, 2, 3, 1] }),
      int64Initializer('rev_start', [-1]),
      int64Initializer('rev_end', [-(2n ** 63n) + 1n]), // past the first element, backwards
      int64Initializer('rev_axis', [0]),
      int64Initializer('rev_step', [-1]),
      int64Initializer('oihw', [0, 0, kernel[0], kernel[1]]),
      ...IO,
    ],
    OPSETS,
  );
}

/** ONNX Runtime's NCHWc contrib ops (registered for its CPU provider): MLAS's direct convolution. */
const NCHWC_DOMAIN = 'com.microsoft.nchwc';
const NCHWC_OPSETS = { '': 13, [NCHWC_DOMAIN]: 1 };

/**
 * MLAS's NCHWc channel block (8 with AVX2, 16 with AVX-512): the channel count that ReorderInput
 * gives a 4-channel tensor, read from the output's shape.
 */
function nchwcBlockModel(): Uint8Array {
  return onnxModel(
    'mrl-nchwc-block',
    [
      node('ReorderInput', ['A'], ['A_c'], { channels_last: 1 }, NCHWC_DOMAIN),
      node('Shape', ['A_c'], ['shape']),
      node('Gather', ['shape', 'channel_axis'], ['channels']),
      node('Cast', ['channels'], ['Y'], { to: ONNX_INT32 }),
      int64Initializer('channel_axis', [1]),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(12, 'Y', ONNX_INT32),
    ],
    NCHWC_OPSETS,
  );
}

/**
 * An NHWC convolution on MLAS's direct NCHWc kernels with a filter that is a graph input. ONNX
 * Runtime's graph optimiser only rewrites Conv to these kernels for a constant filter (ours
 * change every step, so its plain Conv runs im2col + SGEMM); its contrib `Conv` in the
 * com.microsoft.nchwc domain reads the filter at run time, in MLAS's blocked layout, which this
 * graph makes from TF.js's. With B the block:
 * - Cin a multiple of B: ReorderInput (NHWC to [N, Cin/B, H, W, B]) and a filter of
 *   [Cout/B, Cin/B, fh, fw, Bi, Bo] (MLAS's OIHWBiBo); B is fed as [fh, fw, Cin/B, Bi, Cout/B, Bo]
 *   and one transpose reorders it;
 * - Cin < B (an RGB stem): MLAS's NCHW algorithm on the plain NCHW input, filter
 *   [Cout/B, Cin, fh, fw, Bo] (OIHWBo), B fed as [fh, fw, Cin, Cout/B, Bo];
 * - `flipped` (the input gradient of a stride-1 convolution, as a forward one): the filter rotated
 *   by 180 degrees with its channel axes swapped. B is fed as [fh*fw, Cin/B, Bi, Cout/B, Bo] of the
 *   forward filter; reversing the taps and one transpose to [Cin/B, Cout/B, fh*fw, Bo, Bi] give
 *   the OIHWBiBo layout of a convolution from Cout to Cin channels.
 * ReorderOutput writes NHWC. Cout (Cin when flipped) must be a multiple of B.
 */
function nchwcConvModel(
  geometry: ConvGeometry,
  kernel: readonly [number, number],
  channels: readonly [number, number],
  block: number,
  flipped: boolean,
): Uint8Array {
  const [fh, fw] = kernel;
  const [convIn, convOut] = flipped ? [channels[1], channels[0]] : channels;
  const nodes: ProtoField[] = [];
  if (flipped) {
    nodes.push(
      node('Slice', ['B', 'rev_start', 'rev_end', 'rev_axis', 'rev_step'], ['B_rot']), // taps reversed
      node('Transpose', ['B_rot'], ['B_blocked'], { perm: [1, 3, 0, 4, 2] }),
      int64Initializer('rev_start', [-1]),
      int64Initializer('rev_end', [-(2n ** 63n) + 1n]), // past the first element, backwards
      int64Initializer('rev_axis', [0]),
      int64Initializer('rev_step', [-1]),
    );
  } else if (convIn % block === 0) {
    nodes.push(node('Transpose', ['B'], ['B_blocked'], { perm: [4, 2, 0, 1, 3, 5] }));
  } else {
    nodes.push(node('Transpose', ['B'], ['B_blocked'], { perm: [3, 2, 0, 1, 4] }));
  }
  nodes.push(
    node('Reshape', ['B_blocked', 'oihw'], ['W']),
    int64Initializer('oihw', [convOut, convIn, fh, fw]),
    convIn % block === 0
      ? node('ReorderInput', ['A'], ['A_c'], { channels_last: 1 }, NCHWC_DOMAIN)
      : node('Transpose', ['A'], ['A_c'], { perm: [0, 3, 1, 2] }),
    node(
      'Conv',
      ['A_c', 'W'],
      ['Y_c'],
      {
        kernel_shape: [fh, fw],
        strides: [...geometry.strides],
        dilations: [...geometry.dilations],
        pads: [...geometry.pads],
      },
      NCHWC_DOMAIN,
    ),
    node('ReorderOutput', ['Y_c'], ['Y'], { channels: convOut, channels_last: 1 }, NCHWC_DOMAIN),
    ...IO,
  );
  return onnxModel('mrl-nchwc-conv', nodes, NCHWC_OPSETS);
}

/**
 * A 1x1 convolution without padding is a product over channels: on NHWC data it needs no
 * transposes and no im2col. Forward: `Y = A[:, ::sh, ::sw, :] @ B`, B the filter as [Cin, Cout].
 * Input gradient (`transposed`): `dY @ B^T` placed on every stride-th pixel of dX, zeros between
 * (an Unsqueeze, a Pad and a Reshape interleave them). ONNX Runtime's Conv and ConvTranspose took
 * 8 and 7 ms for ResNet-18's first 1x1 stride-2 shortcut at batch 16, ~1 GFLOP/s.
 */
function pointwiseConvModel(
  transposed: boolean,
  strides: readonly [number, number],
  input: readonly [number, number],
  out: readonly [number, number],
): Uint8Array {
  const [sh, sw] = strides;
  const [h, w] = input;
  const [ho, wo] = out;
  const strided = sh > 1 || sw > 1;
  const nodes: ProtoField[] = [];
  if (!transposed) {
    if (strided) {
      nodes.push(
        node('Slice', ['A', 'start', 'end', 'hw', 'steps'], ['A_s']), // [N, Ho, Wo, Cin]
        int64Initializer('start', [0, 0]),
        int64Initializer('end', [(ho - 1) * sh + 1, (wo - 1) * sw + 1]),
        int64Initializer('hw', [1, 2]),
        int64Initializer('steps', [sh, sw]),
      );
    }
    nodes.push(node('MatMul', [strided ? 'A_s' : 'A', 'B'], ['Y']));
  } else {
    nodes.push(node('FusedMatMul', ['A', 'B'], [strided ? 'Z' : 'Y'], { transB: 1 }, 'com.microsoft')); // [N, Ho, Wo, Cin]
    if (strided) {
      nodes.push(
        node('Unsqueeze', ['Z', 'gaps'], ['Z_6d']), // [N, Ho, 1, Wo, 1, Cin]
        node('Pad', ['Z_6d', 'pads'], ['Z_pad']), // [N, Ho, sh, Wo, sw, Cin]
        node('Reshape', ['Z_pad', 'grid'], ['Z_grid']), // [N, Ho*sh, Wo*sw, Cin]
        node('Slice', ['Z_grid', 'start', 'end', 'hw'], ['Y']), // [N, H, W, Cin]
        int64Initializer('gaps', [2, 4]),
        int64Initializer('pads', [0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1, 0]),
        int64Initializer('grid', [0, ho * sh, wo * sw, -1]),
        int64Initializer('start', [0, 0]),
        int64Initializer('end', [h, w]),
        int64Initializer('hw', [1, 2]),
      );
    }
  }
  return onnxModel('mrl-pointwise-conv', [...nodes, ...IO], OPSETS);
}

/**
 * The filter gradient of an NHWC convolution without an im2col buffer in the wasm heap: X goes to
 * [C, N, H, W] (one single-axis transpose) and is padded once; each tap (i, j) is a strided Slice
 * of it, [C, N, Ho, Wo] = [C, P], and one product with dY [P, Cout] gives that tap's [C, Cout]
 * rows of dW; the taps concatenate in the filter's [fh, fw, C, Cout] order. Against im2col + one
 * transposed-operand GEMM: no JavaScript copy loop (8 ms of 28 at ResNet-18's 32x32x64), and
 * products whose operands need no transposing (13 vs 20 ms there).
 */
function filterGradModel(
  geometry: ConvGeometry,
  kernel: readonly [number, number],
  out: readonly [number, number],
  padEnd: readonly [number, number],
): Uint8Array {
  const [fh, fw] = kernel;
  const [ho, wo] = out;
  const [sh, sw] = geometry.strides;
  const [dh, dw] = geometry.dilations;
  const [top, left] = geometry.pads;
  const nodes: ProtoField[] = [
    node('Transpose', ['A'], ['A_cnhw'], { perm: [3, 0, 1, 2] }),
    node('Pad', ['A_cnhw', 'pads'], ['A_pad']),
    int64Initializer('pads', [0, 0, top, left, 0, 0, padEnd[0], padEnd[1]]),
    int64Initializer('hw', [2, 3]),
    int64Initializer('steps', [sh, sw]),
    int64Initializer('c_by_p', [0, -1]),
  ];
  const taps: string[] = [];
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      const t = `${i}_${j}`;
      const [y0, x0] = [i * dh, j * dw];
      nodes.push(
        int64Initializer(`start_${t}`, [y0, x0]),
        int64Initializer(`end_${t}`, [y0 + (ho - 1) * sh + 1, x0 + (wo - 1) * sw + 1]),
        node('Slice', ['A_pad', `start_${t}`, `end_${t}`, 'hw', 'steps'], [`tap_${t}`]), // [C, N, Ho, Wo]
        node('Reshape', [`tap_${t}`, 'c_by_p'], [`cols_${t}`]), // [C, P]
        node('MatMul', [`cols_${t}`, 'B'], [`dw_${t}`]), // [C, Cout]
      );
      taps.push(`dw_${t}`);
    }
  }
  nodes.push(node('Concat', taps, ['Y'], { axis: 0 })); // [fh*fw*C, Cout]
  return onnxModel('mrl-conv-filter-grad', [...nodes, ...IO], OPSETS);
}

/** Softmax and per-row loss, `R = -log_softmax(A)[i, L[i]]`, L given as [N, 1]. */
function softmaxCrossEntropyModel(): Uint8Array {
  return onnxModel(
    'mrl-softmax-ce',
    [
      node('LogSoftmax', ['A'], ['log_probs'], { axis: -1 }),
      node('Exp', ['log_probs'], ['Y']),
      node('GatherElements', ['log_probs', 'L'], ['picked'], { axis: 1 }),
      node('Neg', ['picked'], ['R']),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'L', ONNX_INT32),
      valueInfo(12, 'Y', ONNX_FLOAT),
      valueInfo(12, 'R', ONNX_FLOAT),
    ],
    OPSETS,
  );
}

/** `Y = A * B` with B a scalar. */
function scaleModel(): Uint8Array {
  return onnxModel('mrl-scale', [node('Mul', ['A', 'B'], ['Y']), ...IO], OPSETS);
}

/** `Y = A * B + C`, B a scalar. */
function scaleAddModel(): Uint8Array {
  return onnxModel(
    'mrl-scale-add',
    [node('Mul', ['A', 'B'], ['scaled']), node('Add', ['scaled', 'C'], ['Y']), ...IO, valueInfo(11, 'C', ONNX_FLOAT)],
    OPSETS,
  );
}

/** ONNX Gemm, `Y = op(A) @ op(B) (+ C)`. */
function gemmModel(transposeA: boolean, transposeB: boolean, withC: boolean): Uint8Array {
  return onnxModel(
    'mrl-gemm',
    [
      node('Gemm', withC ? ['A', 'B', 'C'] : ['A', 'B'], ['Y'], {
        transA: transposeA ? 1 : 0,
        transB: transposeB ? 1 : 0,
      }),
      ...IO,
      ...(withC ? [valueInfo(11, 'C', ONNX_FLOAT)] : []),
    ],
    OPSETS,
  );
}

/** ONNX Concat of `count` inputs X0, X1, ... along `axis`. */
function concatModel(axis: number, count: number): Uint8Array {
  const inputs = Array.from({ length: count }, (_, i) => `X${i}`);
  return onnxModel(
    'mrl-concat',
    [
      node('Concat', inputs, ['Y'], { axis }),
      ...inputs.map((name) => valueInfo(11, name, ONNX_FLOAT)),
      valueInfo(12, 'Y', ONNX_FLOAT),
    ],
    OPSETS,
  );
}

/** ONNX ReduceSum (opset 13: axes as an int64 input), keepdims off. */
function reduceSumModel(): Uint8Array {
  return onnxModel(
    'mrl-reduce-sum',
    [
      node('ReduceSum', ['A', 'S'], ['Y'], { keepdims: 0 }),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'S', ONNX_INT64),
      valueInfo(12, 'Y', ONNX_FLOAT),
    ],
    OPSETS,
  );
}

/** ONNX Split (opset 13: sizes as an int64 input) into `count` outputs Y0, Y1, ... */
function splitModel(axis: number, count: number): Uint8Array {
  const outputs = Array.from({ length: count }, (_, i) => `Y${i}`);
  return onnxModel(
    'mrl-split',
    [
      node('Split', ['A', 'S'], outputs, { axis }),
      valueInfo(11, 'A', ONNX_FLOAT),
      valueInfo(11, 'S', ONNX_INT64),
      ...outputs.map((o) => valueInfo(12, o, ONNX_FLOAT)),
    ],
    OPSETS,
  );
}

/** Options for {@link loadOnnxRuntimeKernels}. */
export interface OnnxRuntimeKernelOptions {
  /** Threads for one product; default 1 (the wasm backend runs on one thread in Node). */
  threads?: number;
  /**
   * Threads of ONNX Runtime's own sessions (each has its own intra-op pool); default `threads`.
   * With the oneDNN addon, the products, convolutions and updates run on the addon's OpenMP
   * threads and ONNX Runtime keeps the small operations: at many threads its pools and OpenMP's
   * take turns waking on the same cores. To compare: `bench/speed.mjs --ort-threads 1`.
   */
  onnxRuntimeThreads?: number;
  /**
   * Run the convolutions that gain from it on MLAS's direct NCHWc kernels (default true; see
   * {@link NCHWC_MIN_WIDTH}); false keeps every one on ONNX's Conv (im2col + SGEMM), to compare.
   */
  nchwc?: boolean;
  /** The narrowest outputs that the NCHWc kernels compute; default {@link NCHWC_MIN_WIDTH}. */
  nchwcMinWidth?: { forward: number; inputGradient: number };
  /**
   * What runs the NHWC convolutions and their gradients: `onednn` (oneDNN's direct kernels through
   * the optional addon, `./onednn.ts`; an `MrlError` when it is not built) or `onnxruntime` (the
   * graphs here, with `nchwc`). Default: oneDNN when the addon loads, else ONNX Runtime.
   */
  convolution?: ConvolutionSource;
  /**
   * What runs `matMul`: `onednn` (oneDNN's matmul primitive through the same addon,
   * `./onednn_matmul.ts`; an `MrlError` when it is not built) or `onnxruntime` (MLAS's SGEMM).
   * Default: oneDNN when the addon loads with its products, else ONNX Runtime.
   */
  matmul?: MatMulSource;
  /**
   * What runs the chunked Matryoshka softmax cross-entropy (`../wasm/native_chunked_prefix_softmax.ts`):
   * `onednn` (the same addon, `./onednn_prefix_ce.ts`; an `MrlError` when it is not built) or
   * `onnxruntime` (one ONNX Runtime graph per vocabulary chunk). Default: oneDNN where the products
   * run on oneDNN and the addon has the head, else ONNX Runtime.
   */
  chunkedHead?: MatMulSource;
  /**
   * What runs the Matryoshka softmax cross-entropy of a head with few classes
   * (`../wasm/native_prefix_softmax.ts`, up to `PREFIX_CE_FEW_MAX_CLASSES`): `onednn` (the same
   * addon, `./onednn_prefix_few.ts`; an `MrlError` when it is not built) or `onnxruntime` (a
   * product and a softmax per nesting dim). Default: the addon where it has the head.
   */
  fewClassHead?: MatMulSource;
  /**
   * What runs training-mode batch norm: `onednn` (the same addon's threaded kernels,
   * `./onednn_batch_norm.ts`; an `MrlError` when it is not built) or `wasm` (the wasm backend's
   * SIMD kernels, one thread). Default: the addon when it loads with them, else wasm.
   */
  batchNorm?: BatchNormSource;
  /**
   * What runs the optimiser updates: `onednn` (the same addon's threaded loops,
   * `./onednn_updates.ts`; an `MrlError` when it is not built) or `wasm` (the wasm backend's SIMD
   * kernels, one thread). SGD momentum runs on the addon at every thread count, AdamW at 2 threads
   * or more for parameters of `ADAMW_NATIVE_VALUES` values or more. The same bits either way.
   * Default: the addon when it loads with them.
   */
  sgd?: SgdSource;
}

/** What runs batch norm: see {@link OnnxRuntimeKernelOptions.batchNorm}. */
export type BatchNormSource = 'onednn' | 'wasm';
/** What runs the SGD update: see {@link OnnxRuntimeKernelOptions.sgd}. */
export type SgdSource = BatchNormSource;
export const BATCH_NORM_SOURCES: readonly BatchNormSource[] = ['onednn', 'wasm'];

/** What runs the products: see {@link OnnxRuntimeKernelOptions.matmul}. */
export type MatMulSource = 'onednn' | 'onnxruntime';
export const MATMUL_SOURCES: readonly MatMulSource[] = ['onednn', 'onnxruntime'];

/** What runs the convolutions: see {@link OnnxRuntimeKernelOptions.convolution}. */
export type ConvolutionSource = 'onednn' | 'onnxruntime';
export const CONVOLUTION_SOURCES: readonly ConvolutionSource[] = ['onednn', 'onnxruntime'];

/**
 * The narrowest output (W of NHWC) that the NCHWc kernels compute: forward, and for the stride-1
 * input gradient (whose output is as wide as its input). Narrower ones stay on im2col + SGEMM,
 * which was as fast or faster there on ResNet-18's layers (`bench/nchwc-probe.mjs`, AVX-512,
 * batch 16, CPU time per call against im2col: forward 8x8x256 -> 4x4x512 stride 2 1.02-1.25x,
 * 4x4x512 1.14x; input gradient 0.97x at 8x8x256 and 1.5x at 4x4x512, where reordering the
 * 9.4 MB filter costs as much as the product).
 */
export const NCHWC_MIN_WIDTH = { forward: 8, inputGradient: 16 } as const;

/** `value` when it is one of `allowed` or unset; else an `MrlError` naming the option. */
function checkSource<T extends string>(name: string, value: T | undefined, allowed: readonly T[]): T | undefined {
  if (value !== undefined && !allowed.includes(value)) {
    throw new MrlError(
      'invalid-argument',
      `${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}.`,
    );
  }
  return value;
}

/**
 * ONNX Runtime's GEMM, or `undefined` when `onnxruntime-node` is not installed or does not load
 * on this platform. Synchronous, so a TF.js kernel can call it.
 */
export function loadOnnxRuntimeKernels(options: OnnxRuntimeKernelOptions = {}): NativeKernels | undefined {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new MrlError('invalid-argument', `native kernel threads must be a positive integer, got ${String(threads)}.`);
  }
  const ortThreads = options.onnxRuntimeThreads ?? threads;
  if (!Number.isInteger(ortThreads) || ortThreads < 1) {
    throw new MrlError(
      'invalid-argument',
      `onnxRuntimeThreads must be a positive integer, got ${String(ortThreads)}.`,
      'Leave it out to use the same threads as the other native kernels.',
    );
  }
  let ort: OrtBindingModule;
  let Tensor: OrtTensorConstructor;
  let BigIntTensor: OrtBigIntTensorConstructor;
  let version: string;
  try {
    const requireHere = createRequire(import.meta.url);
    const entry = requireHere.resolve('onnxruntime-node');
    const requireOrt = createRequire(entry);
    // The session API is asynchronous (it defers to setImmediate); its native binding is not.
    ort = requireOrt('./binding.js') as OrtBindingModule;
    Tensor = (requireOrt('onnxruntime-common') as { Tensor: OrtTensorConstructor }).Tensor;
    BigIntTensor = Tensor as unknown as OrtBigIntTensorConstructor;
    version = (requireOrt('../package.json') as { version: string }).version;
    ort.initOrt();
  } catch {
    return undefined;
  }
  const convolution = checkSource('convolution', options.convolution, CONVOLUTION_SOURCES);
  const matmul = checkSource('matmul', options.matmul, MATMUL_SOURCES);
  const chunkedHead = checkSource('chunkedHead', options.chunkedHead, MATMUL_SOURCES);
  const fewClassHead = checkSource('fewClassHead', options.fewClassHead, MATMUL_SOURCES);
  const batchNormSource = checkSource('batchNorm', options.batchNorm, BATCH_NORM_SOURCES);
  const sgdSource = checkSource('sgd', options.sgd, BATCH_NORM_SOURCES);
  const useNchwc = options.nchwc ?? true;
  const minWidth = options.nchwcMinWidth ?? NCHWC_MIN_WIDTH;
  for (const [which, width] of Object.entries(minWidth)) {
    if (!Number.isInteger(width) || width < 0) {
      throw new MrlError(
        'invalid-argument',
        `nchwcMinWidth.${which} must be a non-negative integer (an output width), got ${String(width)}.`,
        `Leave nchwcMinWidth out for the measured default (${JSON.stringify(NCHWC_MIN_WIDTH)}), or give both widths as integers.`,
      );
    }
  }
  const sessions = new Map<string, OrtNativeSession>();
  const session = (key: string, model: () => Uint8Array): OrtNativeSession => {
    let s = sessions.get(key);
    if (s === undefined) {
      s = new ort.binding.InferenceSession();
      const bytes = model();
      s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: ortThreads,
        interOpNumThreads: 1,
        // With more than one thread, ONNX Runtime's pool threads spin after each call by default and
        // take the cores from the main thread's wasm work between calls (ResNet-18 at 2 threads on 2
        // cores: 2x the 1-thread step time, both cores busy). They sleep instead.
        ...(ortThreads > 1 ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
        executionMode: 'sequential',
        // Shapes change from call to call: no planned memory patterns.
        enableMemPattern: false,
      });
      sessions.set(key, s);
    }
    return s;
  };
  const run = (
    s: OrtNativeSession,
    a: Float32Array,
    aShape: readonly number[],
    b: Float32Array,
    bShape: readonly number[],
    y: Float32Array,
    yShape: readonly number[],
  ): void => {
    s.run(
      { A: new Tensor('float32', a, aShape), B: new Tensor('float32', b, bShape) },
      { Y: new Tensor('float32', y, yShape) },
      {},
    );
  };
  // MLAS's NCHWc block, found on first use; 0 where the NCHWc ops do not run (a build or CPU
  // without them), which keeps every convolution on the im2col graphs.
  let block: number | undefined;
  const nchwcBlock = (): number => {
    if (block === undefined) {
      const y = new Int32Array(1);
      try {
        session('NchwcBlock', nchwcBlockModel).run(
          { A: new Tensor('float32', new Float32Array(4), [1, 1, 1, 4]) },
          { Y: new Tensor('int32', y, [1]) },
          {},
        );
        block = y[0]! > 1 ? y[0]! : 0;
      } catch {
        block = 0;
      }
    }
    return block;
  };
  const conv = (
    op: 'Conv' | 'ConvTranspose',
    a: Float32Array,
    aShape: readonly number[],
    filter: Float32Array,
    filterShape: readonly number[],
    y: Float32Array,
    yShape: readonly number[],
    geometry: ConvGeometry,
  ): void => {
    const [fh, fw] = filterShape as [number, number];
    // ConvTranspose's output is s*(in-1) + (f-1)*d + 1 - pads; output_padding adds the rows and
    // columns that the forward convolution never read (they get zero gradient).
    const extent = (axis: 0 | 1, f: number): number =>
      op === 'Conv'
        ? 0
        : (yShape[axis + 1] ?? 0) -
          (geometry.strides[axis] * ((aShape[axis + 1] ?? 0) - 1) +
            (f - 1) * geometry.dilations[axis] +
            1 -
            geometry.pads[axis] -
            geometry.pads[axis + 2]!);
    const outputPadding = [extent(0, fh), extent(1, fw)] as const;
    if (y.length === 0) return;
    if (a.length === 0 || filter.length === 0) {
      y.fill(0);
      return;
    }
    const [cIn, cOut] = [filterShape[2] ?? 0, filterShape[3] ?? 0];
    const { strides, dilations, pads } = geometry;
    if (fh === 1 && fw === 1 && pads.every((p) => p === 0)) {
      // x is A for Conv and Y for ConvTranspose; the output grid is the other one.
      const [xs, ys] = op === 'Conv' ? [aShape, yShape] : [yShape, aShape];
      const input = [xs[1] ?? 0, xs[2] ?? 0] as const;
      const out = [ys[1] ?? 0, ys[2] ?? 0] as const;
      const fits = (axis: 0 | 1): boolean =>
        out[axis] === Math.floor((input[axis] - 1) / strides[axis]) + 1 && out[axis] * strides[axis] >= input[axis];
      if (fits(0) && fits(1)) {
        run(
          session(`Pointwise|${op}|${strides.join()}|${input.join()}|${out.join()}`, () =>
            pointwiseConvModel(op === 'ConvTranspose', strides, input, out),
          ),
          a,
          aShape,
          filter,
          [cIn, cOut],
          y,
          yShape,
        );
        return;
      }
    }
    const b = useNchwc && dilations[0] === 1 && dilations[1] === 1 ? nchwcBlock() : 0;
    const width = yShape[2] ?? 0; // of the output
    if (op === 'Conv' && b > 0 && cOut % b === 0 && (cIn % b === 0 || cIn < b) && width >= minWidth.forward) {
      run(
        session(`Nchwc|${strides.join()}|${pads.join()}|${fh},${fw}|${cIn},${cOut}`, () =>
          nchwcConvModel(geometry, [fh, fw], [cIn, cOut], b, false),
        ),
        a,
        aShape,
        filter,
        cIn % b === 0 ? [fh, fw, cIn / b, b, cOut / b, b] : [fh, fw, cIn, cOut / b, b],
        y,
        yShape,
      );
      return;
    }
    // The input gradient of a stride-1 convolution is a forward Conv with the filter rotated,
    // where its pads, (f - 1) * dilation - pad (bottom/right: what reaches the input's size), are
    // not negative.
    const flipPads =
      op === 'ConvTranspose' && strides[0] === 1 && strides[1] === 1
        ? ([
            (fh - 1) * dilations[0] - pads[0],
            (fw - 1) * dilations[1] - pads[1],
            (yShape[1] ?? 0) - (aShape[1] ?? 0) - ((fh - 1) * dilations[0] - pads[0]) + (fh - 1) * dilations[0],
            (yShape[2] ?? 0) - (aShape[2] ?? 0) - ((fw - 1) * dilations[1] - pads[1]) + (fw - 1) * dilations[1],
          ] as const)
        : null;
    if (flipPads !== null && Math.min(...flipPads) >= 0) {
      if (b > 0 && cIn % b === 0 && cOut % b === 0 && width >= minWidth.inputGradient) {
        run(
          session(`NchwcInputGrad|${flipPads.join()}|${fh},${fw}|${cIn},${cOut}`, () =>
            nchwcConvModel({ strides: [1, 1], dilations, pads: flipPads }, [fh, fw], [cIn, cOut], b, true),
          ),
          a,
          aShape,
          filter,
          [fh * fw, cIn / b, b, cOut / b, b],
          y,
          yShape,
        );
        return;
      }
      run(
        session(`ConvInputGrad|${dilations.join()}|${flipPads.join()}|${fh},${fw}`, () =>
          flippedConvModel(dilations, flipPads, [fh, fw]),
        ),
        a,
        aShape,
        filter,
        [fh * fw, cIn, cOut],
        y,
        yShape,
      );
      return;
    }
    const key = `${op}|${strides.join()}|${dilations.join()}|${pads.join()}|${outputPadding.join()}|${fh},${fw}`;
    run(
      session(key, () => convModel(op, geometry, outputPadding, [fh, fw])),
      a,
      aShape,
      filter,
      [fh * fw * cIn, cOut],
      y,
      yShape,
    );
  };
  const ortConvolutions: Pick<NativeKernels, 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter'> = {
    conv2dBackpropFilter(x, xShape, dy, dyShape, dw, dwShape, geometry) {
      const [n, h, w, c] = xShape as [number, number, number, number];
      const [, ho, wo, cOut] = dyShape as [number, number, number, number];
      const [fh, fw] = dwShape as [number, number];
      if (dw.length === 0) return;
      if (x.length === 0 || dy.length === 0) {
        dw.fill(0);
        return;
      }
      const { strides, dilations, pads } = geometry;
      // What the last output pixel's last tap reads past the input, padded with zeros.
      const padEnd = [
        Math.max(0, (ho - 1) * strides[0] + (fh - 1) * dilations[0] + 1 - h - pads[0]),
        Math.max(0, (wo - 1) * strides[1] + (fw - 1) * dilations[1] + 1 - w - pads[1]),
      ] as const;
      const key = `FilterGrad|${strides.join()}|${dilations.join()}|${pads[0]},${pads[1]}|${padEnd.join()}|${fh},${fw}|${ho},${wo}`;
      run(
        session(key, () => filterGradModel(geometry, [fh, fw], [ho, wo], padEnd)),
        x,
        xShape,
        dy,
        [n * ho * wo, cOut],
        dw,
        [fh * fw * c, cOut],
      );
    },
    conv2d(x, xShape, filter, filterShape, y, yShape, geometry) {
      conv('Conv', x, xShape, filter, filterShape, y, yShape, geometry);
    },
    conv2dBackpropInput(dy, dyShape, filter, filterShape, dx, dxShape, geometry) {
      conv('ConvTranspose', dy, dyShape, filter, filterShape, dx, dxShape, geometry);
    },
  };
  const oneDnn =
    convolution === 'onnxruntime'
      ? undefined
      : loadOneDnnConvolutions({ threads, fallback: ortConvolutions, required: convolution === 'onednn' });
  const convolutions = oneDnn ?? ortConvolutions;
  const ortMatMul: NativeKernels['matMul'] = (a, aShape, b, bShape, y, yShape, transposeA, transposeB) => {
    if (y.length === 0) return;
    if (a.length === 0 || b.length === 0) {
      y.fill(0); // an empty reduction
      return;
    }
    run(
      session(`MatMul|${Number(transposeA)}${Number(transposeB)}`, () => fusedMatMulModel(transposeA, transposeB)),
      a,
      aShape,
      b,
      bShape,
      y,
      yShape,
    );
  };
  const oneDnnMatMul =
    matmul === 'onnxruntime'
      ? undefined
      : loadOneDnnMatMul({ threads, fallback: { matMul: ortMatMul }, required: matmul === 'onednn' });
  // By default the chunked head follows the products: `matmul: 'onnxruntime'` keeps it on ONNX Runtime too.
  const prefixCe =
    chunkedHead === 'onnxruntime' || (chunkedHead === undefined && oneDnnMatMul === undefined)
      ? undefined
      : loadOneDnnPrefixCe({ threads, required: chunkedHead === 'onednn' });
  const prefixCeFew =
    fewClassHead === 'onnxruntime'
      ? undefined
      : loadOneDnnPrefixCeFew({ threads, required: fewClassHead === 'onednn' });
  const batchNorm =
    batchNormSource === 'wasm' ? undefined : loadOneDnnBatchNorm({ threads, required: batchNormSource === 'onednn' });
  const updates = sgdSource === 'wasm' ? undefined : loadOneDnnUpdates({ threads, required: sgdSource === 'onednn' });
  const random = loadOneDnnRandom({ threads });
  return {
    ...(prefixCe === undefined ? {} : { prefixCe }),
    ...(prefixCeFew === undefined ? {} : { prefixCeFew }),
    ...(batchNorm === undefined ? {} : { batchNorm }),
    ...(updates === undefined ? {} : { updates }),
    ...(random === undefined ? {} : { random }),
    get detail() {
      const b = useNchwc ? nchwcBlock() : 0;
      // Also the registration's tag: kernels that differ in what they run must differ here.
      const widths =
        minWidth.forward === NCHWC_MIN_WIDTH.forward && minWidth.inputGradient === NCHWC_MIN_WIDTH.inputGradient
          ? ''
          : ` from widths ${minWidth.forward}/${minWidth.inputGradient}`;
      const nchwc = b > 0 ? `, NCHWc block ${b}${widths}` : '';
      const conv = oneDnn === undefined ? '' : `, convolutions on ${oneDnn.detail}`;
      const head = prefixCe === undefined ? '' : ' (the chunked Matryoshka head too)';
      const products = oneDnnMatMul === undefined ? '' : `, products on ${oneDnnMatMul.detail}${head}`;
      const norm = batchNorm === undefined ? '' : `, batch norm on the ${batchNorm.detail}`;
      const sgd =
        updates === undefined ? '' : `, SGD${updates.adamW === undefined ? '' : ' and AdamW'} on the ${updates.detail}`;
      const masks = random === undefined ? '' : `, dropout masks on the ${random.detail}`;
      const few = prefixCeFew === undefined ? '' : `, few-class Matryoshka heads on the ${prefixCeFew.detail}`;
      return `ONNX Runtime ${version} (MLAS${nchwc})${conv}${products}${norm}${sgd}${few}${masks}, ${threads} thread${threads === 1 ? '' : 's'}${ortThreads === threads ? '' : ` (ONNX Runtime's sessions ${ortThreads})`}`;
    },
    matMul: oneDnnMatMul?.matMul ?? ortMatMul,
    softmaxCrossEntropy(logits, shape, labels, probs, rowLoss) {
      const [rows, classes] = shape;
      if (rows === 0) return;
      session('SoftmaxCrossEntropy', softmaxCrossEntropyModel).run(
        { A: new Tensor('float32', logits, [rows, classes]), L: new Tensor('int32', labels, [rows, 1]) },
        { Y: new Tensor('float32', probs, [rows, classes]), R: new Tensor('float32', rowLoss, [rows, 1]) },
        {},
      );
    },
    scale(x, factor, y) {
      if (x.length === 0) return;
      run(session('Scale', scaleModel), x, [x.length], Float32Array.of(factor), [], y, [y.length]);
    },
    scaleAdd(x, factor, z, y) {
      if (x.length === 0) return;
      session('ScaleAdd', scaleAddModel).run(
        {
          A: new Tensor('float32', x, [x.length]),
          B: new Tensor('float32', Float32Array.of(factor), []),
          C: new Tensor('float32', z, [z.length]),
        },
        { Y: new Tensor('float32', y, [y.length]) },
        {},
      );
    },
    gemm(a, aShape, b, bShape, c, cShape, y, transposeA, transposeB) {
      const m = transposeA ? aShape[1] : aShape[0];
      const n = transposeB ? bShape[0] : bShape[1];
      if (y.length === 0) return;
      const feeds: Record<string, unknown> = {
        A: new Tensor('float32', a, aShape),
        B: new Tensor('float32', b, bShape),
      };
      if (c !== null) feeds['C'] = new Tensor('float32', c, cShape);
      session(`Gemm|${Number(transposeA)}${Number(transposeB)}|${Number(c !== null)}`, () =>
        gemmModel(transposeA, transposeB, c !== null),
      ).run(feeds, { Y: new Tensor('float32', y, [m, n]) }, {});
    },
    concat(inputs, shapes, axis, y, yShape) {
      if (y.length === 0) return;
      const feeds: Record<string, unknown> = {};
      inputs.forEach((x, i) => {
        feeds[`X${i}`] = new Tensor('float32', x, shapes[i]!);
      });
      session(`Concat|${axis}|${inputs.length}`, () => concatModel(axis, inputs.length)).run(
        feeds,
        { Y: new Tensor('float32', y, yShape) },
        {},
      );
    },
    sum(x, shape, axes, y) {
      if (y.length === 0) return;
      if (x.length === 0) {
        y.fill(0);
        return;
      }
      const kept = shape.filter((_, a) => !axes.includes(a));
      session('ReduceSum', reduceSumModel).run(
        {
          A: new Tensor('float32', x, shape),
          S: new BigIntTensor(
            'int64',
            BigInt64Array.from(axes, (v) => BigInt(v)),
            [axes.length],
          ),
        },
        { Y: new Tensor('float32', y, kept) },
        {},
      );
    },
    split(x, shape, axis, sizes, outputs) {
      const feeds = {
        A: new Tensor('float32', x, shape),
        S: new BigIntTensor(
          'int64',
          BigInt64Array.from(sizes, (v) => BigInt(v)),
          [sizes.length],
        ),
      };
      const fetches: Record<string, unknown> = {};
      outputs.forEach((out, i) => {
        fetches[`Y${i}`] = new Tensor(
          'float32',
          out,
          shape.map((d, a) => (a === axis ? sizes[i]! : d)),
        );
      });
      session(`Split|${axis}|${sizes.length}`, () => splitModel(axis, sizes.length)).run(feeds, fetches, {});
    },
    graph(key, model, feeds, fetches) {
      const wrap = (arrays: Readonly<Record<string, NativeArray>>): Record<string, unknown> =>
        Object.fromEntries(
          Object.entries(arrays).map(([name, a]) => [
            name,
            a.data instanceof Int32Array
              ? new Tensor('int32', a.data, a.shape)
              : new Tensor('float32', a.data, a.shape),
          ]),
        );
      session(`Graph|${key}`, model).run(wrap(feeds), wrap(fetches), {});
    },
    conv2d: convolutions.conv2d,
    conv2dBackpropInput: convolutions.conv2dBackpropInput,
    conv2dBackpropFilter: convolutions.conv2dBackpropFilter,
  };
}

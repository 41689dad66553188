// Why: the shipped wasm Tile computes a source index per output element, which makes the
// batch-norm gradient (tile of a [1, 1, 1, C] vector to [N, H, W, C]) a hot spot. Here the
// dims are first collapsed (the BN case becomes a 1-D tile of a C-vector), the input is copied
// once into place, and each tiled dim is then filled by doubling block copies (copyWithin).
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TileAttrs } from '@tensorflow/tfjs';

import { input, replacing } from './util.js';
import type { WasmKernelArgs } from './util.js';

type Heap = Float32Array | Int32Array | Uint8Array;

/** Below this many elements a plain loop beats a TypedArray method call. */
const SMALL_BLOCK = 32;

/** A tiled dim: `size` elements of the input, repeated `rep` times. */
interface TileDim {
  size: number;
  rep: number;
}

/**
 * Merges dims without changing the output's memory order: an unrepeated dim joins the dim
 * before it ((s1, r1), (s2, 1) -> (s1*s2, r1)), and neighbouring size-1 dims multiply their reps.
 */
export function collapseTileDims(shape: readonly number[], reps: readonly number[]): TileDim[] {
  const dims: TileDim[] = [];
  shape.forEach((size, i) => {
    const rep = reps[i] ?? 1;
    if (size === 1 && rep === 1) return;
    const last = dims[dims.length - 1];
    if (last !== undefined && rep === 1) {
      last.size *= size;
    } else if (last !== undefined && last.size === 1 && size === 1) {
      last.rep *= rep;
    } else {
      dims.push({ size, rep });
    }
  });
  return dims;
}

/** Calls `visit(offset)` for every index over `counts` (row-major), offset = sum index*stride. */
function forEachOffset(counts: readonly number[], strides: readonly number[], visit: (offset: number) => void): void {
  const idx = new Array<number>(counts.length).fill(0);
  let offset = 0;
  for (;;) {
    visit(offset);
    let j = counts.length - 1;
    for (; j >= 0; j--) {
      idx[j]! += 1;
      offset += strides[j]!;
      if (idx[j]! < counts[j]!) break;
      offset -= idx[j]! * strides[j]!;
      idx[j] = 0;
    }
    if (j < 0) return;
  }
}

/** Repeats dst[base, base+block) until dst[base, base+total) is filled. */
function replicate(dst: Heap, base: number, block: number, total: number): void {
  if (block < SMALL_BLOCK) {
    for (let t = base + block, end = base + total; t < end; t++) dst[t] = dst[t - block]!;
    return;
  }
  for (let filled = block; filled < total; ) {
    const n = Math.min(filled, total - filled);
    dst.copyWithin(base + filled, base, base + n);
    filled += n;
  }
}

/** Writes `src` tiled by `dims` into `dst` (which holds exactly the output). */
export function tileInto(src: Heap, dst: Heap, dims: readonly TileDim[]): void {
  const k = dims.length;
  if (k === 0) {
    dst.set(src);
    return;
  }
  const sizes = dims.map((d) => d.size);
  const outStrides = new Array<number>(k);
  outStrides[k - 1] = 1;
  for (let i = k - 2; i >= 0; i--) outStrides[i] = outStrides[i + 1]! * sizes[i + 1]! * dims[i + 1]!.rep;

  // 1. The input once, row by row, at the repetition-0 position of every dim.
  const row = sizes[k - 1]!;
  let from = 0;
  forEachOffset(sizes.slice(0, k - 1), outStrides.slice(0, k - 1), (to) => {
    if (row < SMALL_BLOCK) {
      for (let t = 0; t < row; t++) dst[to + t] = src[from + t]!;
    } else {
      dst.set(src.subarray(from, from + row), to);
    }
    from += row;
  });

  // 2. Innermost dim first: once dims > d are complete, the block [i_0..i_{d-1}, 0:size_d, ...]
  //    is contiguous and dim d is filled by repeating it.
  for (let d = k - 1; d >= 0; d--) {
    const { size, rep } = dims[d]!;
    if (rep === 1) continue;
    const block = size * outStrides[d]!;
    forEachOffset(sizes.slice(0, d), outStrides.slice(0, d), (base) => replicate(dst, base, block, block * rep));
  }
}

/** `Tile` for wasm by block copies; strings go to the shipped kernel. */
export function createTileKernel(get: (name: string) => KernelConfig): KernelConfig {
  const original = get(tf.Tile);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args as unknown as WasmKernelArgs<TileAttrs>;
    const x = input(inputs, 'x');
    if (x.dtype === 'string' || attrs.reps.length !== x.shape.length) return original.kernelFunc(args);
    const outShape = x.shape.map((d, i) => d * attrs.reps[i]!);
    const out = backend.makeOutput(outShape, x.dtype);
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    tileInto(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out), collapseTileDims(x.shape, attrs.reps));
    return out;
  };
  return replacing(original, kernelFunc);
}

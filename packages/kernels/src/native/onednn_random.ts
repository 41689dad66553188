// Why: dropout masks drawn by `tf.randomUniform` cost BERT-mini 40-50 ms of CPU a step on one
// thread (../random/philox.ts). `native/dropout.cc`, built into the optional addon, fills them on the
// addon's OpenMP threads with the same Philox4x32-10 draw: the same bits as philox.ts at every
// thread count. Without the addon (or with one built before it) `loadOneDnnRandom` returns
// undefined and the masks are drawn by philox.ts.
import type { DropoutDraw } from '../random/philox.js';
import { loadAddon, type OneDnnAddon } from './onednn.js';

/** The addon's generator functions (native/dropout.cc). */
interface RandomAddon extends OneDnnAddon {
  dropoutMultiplier(threads: number, words: Int32Array, scale: number, y: Float32Array): void;
}

/** Dropout masks on the addon's threads. */
export interface NativeRandom {
  readonly detail: string;
  readonly threads: number;
  /** Fills `y` with the mask of `draw` (values 0 .. y.length - 1). */
  dropoutMultiplier(draw: DropoutDraw, y: Float32Array): void;
}

/**
 * Dropout masks on the addon's `threads` OpenMP threads; `undefined` when the addon is not built,
 * does not load, predates them or is turned off (`MRL_ONEDNN=off`).
 *
 * @example
 * const random = loadOneDnnRandom({ threads: 2 });
 * random?.dropoutMultiplier(dropoutDraw(0.1, 7), mask);
 */
export function loadOneDnnRandom(options: { threads: number }): NativeRandom | undefined {
  const lib = loadAddon() as Partial<RandomAddon> | undefined;
  if (typeof lib?.dropoutMultiplier !== 'function') return undefined;
  const fill = lib.dropoutMultiplier.bind(lib);
  const { threads } = options;
  return {
    detail: 'oneDNN addon',
    threads,
    dropoutMultiplier(draw, y) {
      if (y.length === 0) return;
      // Uint32 words through an Int32Array: the addon reads their bits.
      fill(threads, new Int32Array(Uint32Array.of(draw.key0, draw.key1, draw.keepBelow).buffer), draw.scale, y);
    },
  };
}

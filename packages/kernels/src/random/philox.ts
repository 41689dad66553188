// Why: BERT's dropout drew its masks with `tf.randomUniform`, a JavaScript generator (seedrandom's
// alea) on one thread: about 13 ns a value, 4.5M values a BERT-mini step at batch 8 (nine
// [1024, 256] activations and four [8, 4, 128, 128] attention maps), 40-50 ms of CPU a step at
// any thread count (measured with and without). A counter-based generator gives value i from
// (seed, i) alone, so the addon (native/dropout.cc, with Random123's Philox4x32-10 from Debian's
// librandom123-dev) fills a mask on every thread, and this file gives the same bits anywhere else:
// on the cpu and webgpu backends, and on wasm without the addon. Philox4x32-10 (Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011) is the generator of PyTorch's CUDA
// dropout (JAX draws from its sibling, Threefry); its known answers are in test/dropout.test.ts.

/** Philox4x32's multipliers and Weyl key increments (Random123's PHILOX_M4x32_0/1, PHILOX_W32_0/1). */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** Rounds: Random123's default, with a safety margin over the 7 that pass BigCrush. */
export const PHILOX_ROUNDS = 10;

/** The high 32 bits of the 64-bit product of two uint32 (every step exact in a double). */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const loLo = aLo * bLo;
  const hiLo = aHi * bLo;
  const cross = (loLo >>> 16) + (hiLo & 0xffff) + aLo * bHi;
  return (aHi * bHi + (hiLo >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/**
 * Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1), every word a uint32: the four
 * output words go to `out[at .. at + 3]`.
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  at = 0,
): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let r = 0; r < PHILOX_ROUNDS; r++) {
    if (r > 0) {
      key0 = (key0 + W0) >>> 0;
      key1 = (key1 + W1) >>> 0;
    }
    const hi0 = mulHi(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulHi(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
  }
  out[at] = x0;
  out[at + 1] = x1;
  out[at + 2] = x2;
  out[at + 3] = x3;
}

/** The largest seed a dropout mask takes: seeds are integers in [0, 2^53). */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

/**
 * How a dropout mask is drawn, as the addon takes it: value i keeps its input when the top 24 bits
 * of word i % 4 of Philox4x32-10 at counter (floor(i / 4), 0, 0, 0), key (seed mod 2^32,
 * floor(seed / 2^32)), are below `keepBelow` = round((1 - rate) 2^24); a kept value is multiplied
 * by `scale` = 1 / (1 - rate) in float32 (as `tf.dropout` scales), a dropped one by 0.
 */
export interface DropoutDraw {
  keepBelow: number;
  scale: number;
  key0: number;
  key1: number;
}

/**
 * What is wrong with a dropout `rate` (outside [0, 1)) or `seed` (not an integer in [0, 2^53)),
 * naming the value; undefined when nothing is.
 */
export function dropoutProblem(rate: number, seed: number): { field: 'rate' | 'seed'; message: string } | undefined {
  if (!(rate >= 0 && rate < 1)) return { field: 'rate', message: `dropout rate must be in [0, 1), got ${rate}` };
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    return { field: 'seed', message: `dropout seed must be an integer in [0, 2^53), got ${seed}` };
  }
  return undefined;
}

/** The draw of `rate` and `seed`; throws a RangeError naming a bad rate or seed ({@link dropoutProblem}). */
export function dropoutDraw(rate: number, seed: number): DropoutDraw {
  const problem = dropoutProblem(rate, seed);
  if (problem !== undefined) throw new RangeError(problem.message);
  const keep = Math.fround(1 - rate);
  return {
    keepBelow: Math.round((1 - rate) * 2 ** 24),
    scale: Math.fround(1 / keep),
    key0: (seed % 2 ** 32) >>> 0,
    key1: Math.floor(seed / 2 ** 32) >>> 0,
  };
}

/** Values [from, to) of the dropout multiplier of `draw` (0 or draw.scale) into `out` at `from`. */
export function fillDropoutMultiplier(draw: DropoutDraw, from: number, to: number, out: Float32Array): void {
  const words = new Uint32Array(4);
  for (let block = Math.floor(from / 4); block * 4 < to; block++) {
    philox4x32(block, 0, 0, 0, draw.key0, draw.key1, words);
    const first = Math.max(from, block * 4);
    const last = Math.min(to, block * 4 + 4);
    for (let i = first; i < last; i++) out[i] = words[i - block * 4]! >>> 8 < draw.keepBelow ? draw.scale : 0;
  }
}

/**
 * The dropout multiplier of `n` values at `rate` from `seed`: each value 1 / (1 - rate) with
 * probability 1 - rate, else 0, the same bits on every backend and at every thread count.
 *
 * @example
 * const mask = dropoutMultiplierValues(1024, 0.1, 7); // Float32Array of 0 and 1.1111112
 */
export function dropoutMultiplierValues(n: number, rate: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  fillDropoutMultiplier(dropoutDraw(rate, seed), 0, n, out);
  return out;
}

import { MrlError } from '@mrl/core/errors';
import { assertIntInRange } from './validate.js';

/**
 * A bounded binary min-heap that keeps the `capacity` best `(score, id)` pairs pushed so far,
 * in O(log k) per accepted push and O(1) per rejected one.
 *
 * Order: a higher score is better; equal scores prefer the lower id. This total order makes
 * every search path in this folder deterministic, so a shortlist/re-rank at full dim returns
 * exactly what exact search returns, and a heap equals a full sort.
 *
 * Scores are kept as float64 so ties are decided on the values the caller computed.
 *
 * @example
 * ```ts
 * const heap = new TopKHeap(2);
 * [0.1, 0.9, 0.5].forEach((s, i) => heap.push(s, i));
 * const ids = new Int32Array(2), scores = new Float32Array(2);
 * heap.drainInto(ids, scores, 0); // ids = [1, 2]
 * ```
 */
export class TopKHeap {
  readonly capacity: number;
  private readonly scores: Float64Array;
  private readonly ids: Int32Array;
  private count = 0;

  constructor(capacity: number) {
    assertIntInRange('top-k capacity', capacity, 1);
    this.capacity = capacity;
    this.scores = new Float64Array(capacity);
    this.ids = new Int32Array(capacity);
  }

  /** Pairs currently kept (at most `capacity`). */
  get size(): number {
    return this.count;
  }

  /**
   * The score a new pair must reach to be considered: the worst kept score once the heap is
   * full, -Infinity before. Hot loops compare against it to skip the call.
   */
  get threshold(): number {
    return this.count < this.capacity ? -Infinity : (this.scores[0] as number);
  }

  /** Offers a pair; keeps it when the heap is not full or it beats the worst kept pair. */
  push(score: number, id: number): void {
    const s = this.scores;
    const ids = this.ids;
    if (this.count < this.capacity) {
      // Sift up: the root holds the worst pair.
      let i = this.count++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        const ps = s[p] as number;
        const pid = ids[p] as number;
        // Stop when the parent is already worse than (or as bad as) the new pair.
        if (ps < score || (ps === score && pid > id)) break;
        s[i] = ps;
        ids[i] = pid;
        i = p;
      }
      s[i] = score;
      ids[i] = id;
      return;
    }
    const ws = s[0] as number;
    // NaN fails both tests and is never kept.
    if (!(score > ws || (score === ws && id < (ids[0] as number)))) return;
    this.siftDown(score, id);
  }

  /**
   * Writes the kept pairs best-first into `ids`/`scores` starting at `offset`, returns how many
   * were written, and leaves the heap empty for reuse.
   */
  drainInto(ids: Int32Array, scores: Float32Array | Float64Array, offset: number): number {
    const n = this.count;
    for (let out = n - 1; out >= 0; out--) {
      ids[offset + out] = this.ids[0] as number;
      scores[offset + out] = this.scores[0] as number;
      this.count--;
      if (this.count > 0) {
        const last = this.count;
        this.siftDown(this.scores[last] as number, this.ids[last] as number);
      }
    }
    return n;
  }

  /** Empties the heap without reading it. */
  clear(): void {
    this.count = 0;
  }

  /** Puts `(score, id)` at the root and sifts it down to its place among `count` pairs. */
  private siftDown(score: number, id: number): void {
    const s = this.scores;
    const ids = this.ids;
    const n = this.count;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      // Pick the worse child.
      let c = l;
      const r = l + 1;
      if (r < n) {
        const ls = s[l] as number;
        const rs = s[r] as number;
        if (rs < ls || (rs === ls && (ids[r] as number) > (ids[l] as number))) c = r;
      }
      const cs = s[c] as number;
      const cid = ids[c] as number;
      // Stop when the pair is worse than the worse child.
      if (score < cs || (score === cs && id > cid)) break;
      s[i] = cs;
      ids[i] = cid;
      i = c;
    }
    s[i] = score;
    ids[i] = id;
  }
}

/** The best `k` entries of a score list, best first (ties: lower index first). */
export interface TopKResult {
  /** Indices into the scored list, best first. Length min(k, scores.length). */
  readonly ids: Int32Array;
  /** Their scores. */
  readonly scores: Float64Array;
}

/**
 * Top-k of one score list with a bounded heap: O(n log k), no full sort.
 *
 * @example
 * ```ts
 * topK([0.2, 0.7, 0.1, 0.7], 2); // { ids: [1, 3], scores: [0.7, 0.7] }
 * ```
 */
export function topK(scores: ArrayLike<number>, k: number): TopKResult {
  assertIntInRange('k', k, 1);
  if (scores.length === 0) {
    throw new MrlError('invalid-argument', 'topK got an empty score list', 'pass at least one score');
  }
  const heap = new TopKHeap(Math.min(k, scores.length));
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i] as number;
    if (v >= heap.threshold) heap.push(v, i);
  }
  const ids = new Int32Array(heap.size);
  const out = new Float64Array(heap.size);
  heap.drainInto(ids, out, 0);
  return { ids, scores: out };
}

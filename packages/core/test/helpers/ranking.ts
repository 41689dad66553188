// The Matryoshka-Adaptor's ranking term in plain numbers, for the adaptor tests.

/**
 * Query i's log-softmax over the documents of `logit * cos(q_i[:m], k_j[:m])`, in float64 on the
 * host: all `cols` documents, the masked ones at -Infinity.
 */
export function hostLogSoftmax(
  q: Float32Array,
  doc: Float32Array,
  n: number,
  cols: number,
  d: number,
  m: number,
  logit: number,
  mask?: Float32Array,
): number[][] {
  const unit = (x: Float32Array, i: number): number[] => {
    const v = Array.from(x.subarray(i * d, i * d + m));
    const norm = Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    return v.map((a) => a / norm);
  };
  return Array.from({ length: n }, (_, i) => {
    const qi = unit(q, i);
    const logits = Array.from({ length: cols }, (_, j) =>
      mask !== undefined && mask[i * cols + j] === 1
        ? Number.NEGATIVE_INFINITY
        : logit * qi.reduce((s, a, t) => s + a * unit(doc, j)[t]!, 0),
    );
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
    return logits.map((l) => l - lse);
  });
}

/**
 * Multiple-negatives ranking loss of prefix m with extra negative documents, in float64 on the
 * host: query i's softmax runs over all `cols` documents (its positive is document i; documents
 * n.. are negatives of every query), without the masked ones.
 */
export function hostRanking(
  q: Float32Array,
  doc: Float32Array,
  n: number,
  cols: number,
  d: number,
  m: number,
  scale: number,
  mask?: Float32Array,
): number {
  const logSoftmax = hostLogSoftmax(q, doc, n, cols, d, m, scale, mask);
  return -logSoftmax.reduce((s, row, i) => s + row[i]!, 0) / n;
}

// The Matryoshka-Adaptor's ranking term in plain numbers, for the adaptor tests.

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
  const unit = (x: Float32Array, i: number): number[] => {
    const v = Array.from(x.subarray(i * d, i * d + m));
    const norm = Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    return v.map((a) => a / norm);
  };
  let total = 0;
  for (let i = 0; i < n; i++) {
    const qi = unit(q, i);
    const logits: number[] = [];
    let positive = 0;
    for (let j = 0; j < cols; j++) {
      if (mask !== undefined && mask[i * cols + j] === 1) continue;
      const dj = unit(doc, j);
      const logit = scale * qi.reduce((s, a, t) => s + a * dj[t]!, 0);
      if (j === i) positive = logit;
      logits.push(logit);
    }
    const max = Math.max(...logits);
    total += max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0)) - positive;
  }
  return total / n;
}

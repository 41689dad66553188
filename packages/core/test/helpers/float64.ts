// Float64 references for the normalisation gradient tests: the loss written out in plain
// numbers, and its central differences.

/**
 * sum(layerNorm(x) * w) in float64: `x` and `w` are rows of `width` values, each row normalised
 * over its width (biased variance, `eps` inside the square root), scaled by `g`, shifted by `b`.
 */
export function layerNormLoss(
  x: readonly number[],
  g: readonly number[],
  b: readonly number[],
  w: readonly number[],
  width: number,
  eps: number,
): number {
  let total = 0;
  for (let r = 0; r < x.length / width; r++) {
    const row = x.slice(r * width, (r + 1) * width);
    const mean = row.reduce((a, v) => a + v, 0) / width;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / width;
    row.forEach((v, c) => {
      total += (((v - mean) / Math.sqrt(variance + eps)) * g[c]! + b[c]!) * w[r * width + c]!;
    });
  }
  return total;
}

/** (f(v + h e_i) - f(v - h e_i)) / 2h for every coordinate i of `values`. */
export function centralDifferences(values: readonly number[], f: (v: number[]) => number, h = 1e-5): number[] {
  return values.map(
    (_, i) =>
      (f(values.map((v, j) => (j === i ? v + h : v))) - f(values.map((v, j) => (j === i ? v - h : v)))) / (2 * h),
  );
}

// Paired CPU-time comparison of two forms of one computation, shared by the kernel benches.

/** CPU milliseconds (user + system, every thread of the process) that `fn` takes. */
export const cpuMs = (fn) => {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};

/** The upper median (the middle element for an odd count). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Median CPU ms of each form over `reps` pairs, alternating which runs first, and the median of
 * the per-pair ratios (new / old). One warm-up call of each first.
 */
export function paired(oldForm, newForm, reps) {
  oldForm();
  newForm();
  const a = [];
  const b = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) {
      a.push(cpuMs(oldForm));
      b.push(cpuMs(newForm));
    } else {
      b.push(cpuMs(newForm));
      a.push(cpuMs(oldForm));
    }
  }
  return { old: median(a), now: median(b), ratio: median(a.map((x, i) => b[i] / x)) };
}

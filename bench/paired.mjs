// Paired CPU-time comparison of two forms of one computation, shared by the kernel benches.

/** CPU milliseconds (user + system, every thread of the process) that `fn` takes. */
export const cpuMs = (fn) => {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};

/** [wall ms, CPU ms] of `fn` (CPU: user + system, every thread of the process). */
export const wallCpuMs = (fn) => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const d = process.cpuUsage(c0);
  return [performance.now() - t0, (d.user + d.system) / 1000];
};

/** The upper median (the middle element for an odd count). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Samples of `measure(name)` for each of `names`, in `reps` rounds whose order is reversed every
 * other round, so that a machine's drift slows every form alike. `setUp(name)` runs before a
 * form's calls (registering its kernels); with `warm`, each form is first called once untimed;
 * each round calls a form `untimed` times untimed, then `perRound` times timed.
 */
export function alternate(names, reps, measure, { setUp = () => {}, warm = true, untimed = 0, perRound = 1 } = {}) {
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  if (warm) {
    for (const name of names) {
      setUp(name);
      measure(name);
    }
  }
  for (let r = 0; r < reps; r++) {
    const order = [...names];
    if (r % 2 === 1) order.reverse();
    for (const name of order) {
      setUp(name);
      for (let i = 0; i < untimed; i++) measure(name);
      for (let i = 0; i < perRound; i++) samples[name].push(measure(name));
    }
  }
  return samples;
}

/** Per name, the median wall ms of [wall, cpu] samples, and a `wall | cpu` table cell of medians to `digits`. */
export function wallCpuCells(samples, names, digits) {
  const walls = names.map((k) => median(samples[k].map(([wall]) => wall)));
  const cells = names.map(
    (k, i) => `${walls[i].toFixed(digits)} | ${median(samples[k].map(([, cpu]) => cpu)).toFixed(digits)}`,
  );
  return { walls, cells };
}

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

/** A stream of uniform floats in [-1, 1) from `seed` (an LCG: the same inputs on every run). */
export function seededRandom(seed) {
  let s = seed;
  return (n) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      a[i] = s / 2 ** 31 - 1;
    }
    return a;
  };
}

/** The largest |a - b| over the largest |b|: how far one form's output is from the other's. */
export const maxRel = (a, b) => {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
};

/** Element count of a shape. */
export const size = (shape) => shape.reduce((p, d) => p * d);

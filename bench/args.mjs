// Command-line flags of the bench scripts: `--name value` pairs read from process.argv.

/**
 * Where `--name` is in `argv`, or -1. A flag given twice is refused rather than read once: a
 * comparison run with `--seed 0 ... --seed 1` would otherwise measure one setting under the name
 * of another.
 */
export function flagIndex(name, argv = process.argv) {
  const flag = `--${name}`;
  const first = argv.indexOf(flag);
  const again = first < 0 ? -1 : argv.indexOf(flag, first + 1);
  if (again >= 0) {
    throw new Error(
      `${flag} is given twice (${JSON.stringify(argv[first + 1])} and ${JSON.stringify(argv[again + 1])}); ` +
        'give each bench flag once.',
    );
  }
  return first;
}

/** The value after `--name`, or `fallback` when the flag is absent. */
export const arg = (name, fallback, argv = process.argv) => {
  const i = flagIndex(name, argv);
  return i >= 0 ? argv[i + 1] : fallback;
};

/** As {@link arg}, but `fallback` also when `--name` is the last word (no value after it). */
export const argWithValue = (name, fallback, argv = process.argv) => {
  const i = flagIndex(name, argv);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};

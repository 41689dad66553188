// Command-line flags of the bench scripts: `--name value` pairs read from process.argv.

/** The value after `--name`, or `fallback` when the flag is absent. */
export const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};

/** As {@link arg}, but `fallback` also when `--name` is the last word (no value after it). */
export const argWithValue = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
};

// The OpenMP spin count that the addon's loader gives libgomp (src/native/onednn.ts, loadAddon):
// libgomp reads it once, when it loads with the addon, and prints what it read under
// OMP_DISPLAY_ENV=verbose. Each case loads the built addon in a fresh Node process (`pnpm test`
// builds dist/ first), because a process loads libgomp only once.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { OPENMP_SPIN_COUNT } from '../src/native/onednn.js';
import { ONEDNN_BUILDABLE } from './helpers/onednn.js';

const DIST = fileURLToPath(new URL('../dist/native/onednn.js', import.meta.url));

/** Loads the addon in a child with `env` added; what libgomp read, and what is left in the child's env. */
function loadInChild(env: Record<string, string>): { loaded: boolean; left: string | null; spin: string | null } {
  const script =
    `import { oneDnnAvailable } from ${JSON.stringify(DIST)};` +
    'console.log(JSON.stringify({ loaded: oneDnnAvailable(), left: process.env.GOMP_SPINCOUNT ?? null }));';
  const base = { ...process.env };
  delete base['GOMP_SPINCOUNT'];
  delete base['OMP_WAIT_POLICY'];
  delete base['MRL_ONEDNN'];
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...base, OMP_DISPLAY_ENV: 'verbose', ...env },
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  const out = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as { loaded: boolean; left: string | null };
  const spin = /GOMP_SPINCOUNT = '(\d+)'/.exec(run.stderr + run.stdout)?.[1] ?? null;
  return { ...out, spin };
}

describe("libgomp's spin count when the oneDNN addon loads", () => {
  it('is OPENMP_SPIN_COUNT by default, and the variable is gone again for child processes', () => {
    const r = loadInChild({});
    if (ONEDNN_BUILDABLE) expect(r.loaded, 'run `pnpm --filter @mrl/kernels run build:native`').toBe(true);
    if (!r.loaded) return; // no addon here: no libgomp to read anything (the fallback tests cover this case)
    expect(OPENMP_SPIN_COUNT).toBe(10_000);
    expect(r.spin).toBe(String(OPENMP_SPIN_COUNT));
    expect(r.left).toBeNull();
  });

  it("keeps the user's GOMP_SPINCOUNT", () => {
    const r = loadInChild({ GOMP_SPINCOUNT: '1234' });
    if (!r.loaded) return;
    expect(r.spin).toBe('1234');
    expect(r.left).toBe('1234');
  });

  it("keeps the user's OMP_WAIT_POLICY (passive: no spinning)", () => {
    const r = loadInChild({ OMP_WAIT_POLICY: 'passive' });
    if (!r.loaded) return;
    expect(r.spin).toBe('0');
    expect(r.left).toBeNull();
  });
});

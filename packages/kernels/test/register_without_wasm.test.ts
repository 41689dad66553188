// No '@tensorflow/tfjs-backend-wasm' import in this file: vitest runs each file in a fresh
// module graph, so the wasm kernels are absent here.
import { describe, expect, it } from 'vitest';

import { MrlError } from '../src/errors.js';
import { registerWasmTrainingKernels } from '../src/index.js';

describe('registerWasmTrainingKernels without the wasm backend', () => {
  it('throws a backend-unavailable MrlError that says what to import', () => {
    let error: unknown;
    try {
      registerWasmTrainingKernels();
    } catch (e) {
      error = e;
    }
    expect(MrlError.is(error)).toBe(true);
    expect((error as MrlError).kind).toBe('backend-unavailable');
    expect((error as MrlError).message).toMatch(/The wasm backend has no 'Transpose' kernel registered/);
    expect((error as MrlError).fix).toMatch(/@tensorflow\/tfjs-backend-wasm/);
  });
});

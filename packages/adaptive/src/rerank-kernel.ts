import { MrlError } from '@mrl/core/errors';
import { WASM_BASE64 } from './wasm/rerank.wasm.js';

/*
 * The dot products of the exact re-rank: one query against its candidate rows, which sit at
 * random places in the index. Two implementations give bit-identical float64 sums (each adds
 * q[j] * x[j] in the order j = 0..m-1, the products of two float32 values being exact):
 *  - 'javascript': the plain loop, one row at a time (latency-bound: each add waits for the last);
 *  - 'wasm-simd': the rows are copied next to each other into the module's memory (one
 *    TypedArray.set per row, a memcpy) and scored 8 at a time with f64x2 lanes across rows
 *    (src/wasm/rerank.wat), so 8 independent sums are in flight.
 * The wasm module is compiled once, on first use, from the base64 in rerank.wasm.ts; where
 * WebAssembly or its SIMD is missing, `rerankKernel('auto')` is the JavaScript loop.
 */

/** Which implementation of the re-rank's dot products runs. */
export type RerankKernelName = 'wasm-simd' | 'javascript';

/** Dot products of one query against a gathered set of rows. */
export interface RerankKernel {
  readonly name: RerankKernelName;
  /**
   * out[c] = sum over j < m of query[qo + j] * x[ids[c] * d + j], for c < n, in float64 (summed
   * in order of j). `ids` must be valid rows of `x` (the caller checks them).
   */
  dots(
    query: Float32Array,
    qo: number,
    x: Float32Array,
    d: number,
    m: number,
    ids: Int32Array,
    n: number,
    out: Float64Array,
  ): void;
}

const javascriptKernel: RerankKernel = {
  name: 'javascript',
  dots(query, qo, x, d, m, ids, n, out) {
    for (let c = 0; c < n; c++) {
      const base = (ids[c] as number) * d;
      let dot = 0;
      for (let j = 0; j < m; j++) dot += (query[qo + j] as number) * (x[base + j] as number);
      out[c] = dot;
    }
  },
};

/** The parts of the WebAssembly JS API used here (the project's TypeScript libs omit it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface RerankExports {
  readonly memory: WasmMemory;
  dots(q: number, rows: number, n: number, m: number, out: number): void;
}

const PAGE = 65536;
/** Rows the wasm kernel scores per group (rows past n in the last group are computed and ignored). */
const GROUP = 8;
/** Bytes of gathered rows per call into the module (see dots()). */
const CHUNK_BYTES = 1 << 20;

class WasmKernel implements RerankKernel {
  readonly name = 'wasm-simd' as const;
  private f32: Float32Array;
  private f64: Float64Array;
  /** Keeps the touch loop's sum observable, so the loads are not optimised away. */
  sink = 0;
  constructor(private readonly wasm: RerankExports) {
    this.f32 = new Float32Array(wasm.memory.buffer);
    this.f64 = new Float64Array(wasm.memory.buffer);
  }

  dots(
    query: Float32Array,
    qo: number,
    x: Float32Array,
    d: number,
    m: number,
    ids: Int32Array,
    n: number,
    out: Float64Array,
  ): void {
    // At most ~1 MiB of gathered rows per call into the module, so its memory stays small
    // however many candidates a caller passes (it never shrinks once grown).
    const chunk = Math.max(GROUP, Math.floor(CHUNK_BYTES / (4 * m) / GROUP) * GROUP);
    for (let from = 0; from < n; from += chunk)
      this.chunk(query, qo, x, d, m, ids, from, Math.min(n, from + chunk), out);
  }

  /** dots() for candidates [from, to). */
  private chunk(
    query: Float32Array,
    qo: number,
    x: Float32Array,
    d: number,
    m: number,
    ids: Int32Array,
    from: number,
    to: number,
    out: Float64Array,
  ): void {
    const n = to - from;
    const padded = Math.ceil(n / GROUP) * GROUP;
    // Layout (bytes): [0, 16m) the query as f64x2 splats; then `padded` f64 sums; then the rows.
    const qBytes = 16 * m;
    const outAt = qBytes;
    const rowsAt = outAt + 8 * padded;
    const needed = rowsAt + 4 * padded * m;
    const memory = this.wasm.memory;
    if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
    if (this.f32.buffer !== memory.buffer) {
      this.f32 = new Float32Array(memory.buffer);
      this.f64 = new Float64Array(memory.buffer);
    }
    const f32 = this.f32;
    const f64 = this.f64;
    for (let j = 0; j < m; j++) {
      const v = query[qo + j] as number;
      f64[2 * j] = v;
      f64[2 * j + 1] = v;
    }
    // Touch one value per 64-byte line of every candidate row first: these loads do not depend
    // on each other, so the core fetches the rows' lines in parallel, and the copies below find
    // them in cache (a copy row by row would wait on each row's misses in turn).
    let touched = 0;
    for (let c = from; c < to; c++) {
      const base = (ids[c] as number) * d;
      for (let j = 0; j < m; j += 16) touched += x[base + j] as number;
    }
    this.sink = touched;
    let at = rowsAt >> 2;
    for (let c = from; c < to; c++) {
      const base = (ids[c] as number) * d;
      f32.set(x.subarray(base, base + m), at);
      at += m;
    }
    this.wasm.dots(0, rowsAt, n, m, outAt);
    const o = outAt >> 3;
    for (let c = 0; c < n; c++) out[from + c] = f64[o + c] as number;
  }
}

let wasmKernel: WasmKernel | null | undefined;

/** The wasm SIMD kernel, or null where WebAssembly SIMD is not available. */
function loadWasm(): WasmKernel | null {
  if (wasmKernel !== undefined) return wasmKernel;
  wasmKernel = null;
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  const decode = (globalThis as { atob?: (s: string) => string }).atob;
  if (api === undefined || decode === undefined) return null;
  const text = decode(WASM_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  // A runtime without SIMD rejects the module at validation: then the JavaScript loop serves.
  if (!api.validate(bytes)) return null;
  const instance = new api.Instance(new api.Module(bytes), {});
  wasmKernel = new WasmKernel(instance.exports as unknown as RerankExports);
  return wasmKernel;
}

/**
 * The re-rank's dot-product kernel: 'auto' (default) is wasm SIMD where the runtime has it,
 * else the JavaScript loop; 'wasm-simd' throws where it is missing. Both give the same float64
 * sums bit for bit.
 *
 * @example
 * ```ts
 * const k = rerankKernel('javascript');
 * const out = new Float64Array(2);
 * k.dots(query, 0, index.vectors, index.dim, index.dim, Int32Array.of(4, 7), 2, out);
 * ```
 */
export function rerankKernel(which: 'auto' | RerankKernelName = 'auto'): RerankKernel {
  if (which === 'javascript') return javascriptKernel;
  if (which !== 'auto' && which !== 'wasm-simd') {
    throw new MrlError(
      'invalid-argument',
      `re-rank kernel must be 'auto', 'wasm-simd' or 'javascript', got '${String(which)}'.`,
    );
  }
  const wasm = loadWasm();
  if (wasm !== null) return wasm;
  if (which === 'auto') return javascriptKernel;
  throw new MrlError(
    'backend-unavailable',
    'the wasm SIMD re-rank kernel cannot run here: this runtime has no WebAssembly SIMD.',
    "Use kernel 'auto' or 'javascript'.",
  );
}

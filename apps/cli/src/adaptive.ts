import * as core from '@mrl/core';
import { MrlError } from '@mrl/core';

/*
 * The adaptive-retrieval API of @mrl/core (packages/core/src/adaptive), looked up at run time:
 * it is being added to core's index while this CLI is written. These are the few members the
 * CLI uses, typed here structurally; once core's index exports them, import them directly.
 */

export interface IndexLike {
  /** [size, dim] row-major. */
  readonly vectors: Float32Array;
  readonly size: number;
  readonly dim: number;
  readonly labels: Int32Array | undefined;
  readonly metadata: Readonly<Record<string, unknown>>;
  search(queries: Float32Array, options: { k: number; dim?: number }): SearchResultLike;
  shortlistRerank(
    queries: Float32Array,
    options: { shortlistDim: number; shortlistK: number; rerankDim: number; k: number },
  ): SearchResultLike;
  funnel(
    queries: Float32Array,
    options: { dims: readonly number[]; shortlists: readonly number[]; k: number },
  ): SearchResultLike;
}

export interface SearchResultLike {
  readonly numQueries: number;
  readonly k: number;
  readonly ids: Int32Array;
  readonly scores: Float32Array;
  readonly flopsPerQuery: number;
  readonly stages: readonly { dim: number; candidatesPerQuery: number; kept: number; flopsPerQuery: number }[];
}

export interface AdaptiveApi {
  MatryoshkaIndex: {
    fromVectors(
      vectors: Float32Array,
      options: { dim: number; labels?: Int32Array; metadata?: Record<string, unknown> },
    ): IndexLike;
  };
  saveIndex(index: IndexLike, file: string): void;
  openIndex(file: string): IndexLike;
  defaultFunnel(indexDim: number, k?: number): { dims: number[]; shortlists: number[] };
  recallAtK(result: SearchResultLike, exact: SearchResultLike, k?: number): number;
  meanAveragePrecisionAtK(result: SearchResultLike, queryLabels: Int32Array, dbLabels: Int32Array, k?: number): number;
}

function isAdaptiveApi(api: Partial<AdaptiveApi>): api is AdaptiveApi {
  return (
    typeof api.MatryoshkaIndex?.fromVectors === 'function' &&
    typeof api.openIndex === 'function' &&
    typeof api.saveIndex === 'function'
  );
}

/**
 * The adaptive API: from core's index when it exports it, else from the compiled module beside
 * core's entry point (dist/adaptive/index.js), else undefined.
 */
export async function adaptiveApi(): Promise<AdaptiveApi | undefined> {
  if (isAdaptiveApi(core as unknown as Partial<AdaptiveApi>)) return core as unknown as AdaptiveApi;
  try {
    const url = new URL('./adaptive/index.js', import.meta.resolve('@mrl/core'));
    const module = (await import(url.href)) as Partial<AdaptiveApi>;
    return isAdaptiveApi(module) ? module : undefined;
  } catch {
    return undefined;
  }
}

export async function requireAdaptiveApi(what: string): Promise<AdaptiveApi> {
  const api = await adaptiveApi();
  if (api === undefined) {
    throw new MrlError(
      'unsupported',
      `${what} needs the adaptive retrieval index, which this build of @mrl/core does not have yet.`,
      'Rebuild after @mrl/core exports MatryoshkaIndex (pnpm build); embed still writes .npy and safetensors meanwhile.',
    );
  }
  return api;
}

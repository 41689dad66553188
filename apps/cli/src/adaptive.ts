import * as adaptive from '@mrl/adaptive';
import * as adaptiveNode from '@mrl/adaptive/node';

/*
 * The adaptive-retrieval API the commands use (@mrl/adaptive and its Node entry), typed
 * structurally so that the commands depend on the few members they call.
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

// Exact scans on the native GEMM when onnxruntime-node loads here, in JavaScript otherwise.
let gemm: adaptive.Gemm | undefined | null = null;
function searchGemm(): adaptive.Gemm | undefined {
  if (gemm === null) gemm = adaptiveNode.nativeGemm();
  return gemm;
}

/** The adaptive-retrieval API (`@mrl/adaptive`, a dependency of the CLI). */
export const adaptiveApi: AdaptiveApi = {
  MatryoshkaIndex: adaptive.MatryoshkaIndex,
  saveIndex: (index, file) => adaptiveNode.saveIndex(index as adaptive.MatryoshkaIndex, file),
  openIndex: (file) => adaptiveNode.openIndex(file, { gemm: searchGemm() }),
  defaultFunnel: (indexDim, k) => {
    const f = adaptive.defaultFunnel(indexDim, k);
    return { dims: [...f.dims], shortlists: [...f.shortlists] };
  },
  recallAtK: adaptive.recallAtK,
  meanAveragePrecisionAtK: adaptive.meanAveragePrecisionAtK,
};

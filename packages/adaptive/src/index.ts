/**
 * Adaptive deployment of Matryoshka embeddings (Kusupati et al., NeurIPS 2022, Sec. 5):
 * a classification cascade over nested dims, and a retrieval index that searches at any prefix,
 * with shortlist/re-rank, funnels, quantised first stages, persistence and metrics.
 * Browser-safe: nothing here imports a Node module; file I/O is in `@mrl/adaptive/node`.
 * See packages/adaptive/README.md.
 */
export { predictionConfidence } from './confidence.js';
export type { ConfidenceMeasure, Confidences, ScoreKind } from './confidence.js';
export { cascadeStages, evaluateCascade, runCascade } from './cascade.js';
export type { CascadeEvaluation, CascadeInput, CascadeOptions, CascadeRun, CascadeStages } from './cascade.js';
export { tuneCascadeThresholds } from './cascade-tuning.js';
export type { CascadeTarget, TunedCascade } from './cascade-tuning.js';
export { TopKHeap, topK } from './topk.js';
export type { TopKResult } from './topk.js';
export { QUERY_BLOCK, QUERY_TILE, blockedTopK, dotProducts, rowBlockSize } from './scoring.js';
export type { MatrixView } from './scoring.js';
export {
  popcount32,
  quantizeBinary,
  quantizeInt8,
  quantizedOpsPerQuery,
  quantizedOpsPerRow,
  quantizedTopK,
} from './quantize.js';
export type { BinaryPrefix, Int8Prefix, Int8ScaleMode, QuantizedPrefix } from './quantize.js';
export { defaultFunnel, validateFunnel } from './funnel.js';
export type { FunnelConfig } from './funnel.js';
export { gemmTopK, jsGemm } from './gemm.js';
export type { Gemm } from './gemm.js';
export { MatryoshkaIndex } from './vector-index.js';
export { rerankKernel } from './rerank-kernel.js';
export type { RerankKernel, RerankKernelName } from './rerank-kernel.js';
export type {
  FunnelOptions,
  IndexOptions,
  Metric,
  QuantizeSpec,
  SearchOptions,
  SearchResult,
  ShortlistRerankOptions,
  StageReport,
} from './vector-index.js';
export { crc32Portable } from './crc32.js';
export { meanAveragePrecisionAtK, recallAtK } from './metrics.js';
export type { RankedHits } from './metrics.js';

export { MatryoshkaAdaptor, applyAdaptor, type AdaptorWeights } from './adaptor.js';
export { defaultHidden, validateAdaptorConfig, type AdaptorConfig } from './config.js';
export {
  NeighbourDistributionObjective,
  PairwiseSimilarityObjective,
  RankingObjective,
  TopKSimilarityObjective,
  prefixCosineSimilarity,
  reconstructionLoss,
  similarityTarget,
  type RankingTarget,
  type SimilarityTarget,
} from './losses.js';
export {
  AdaptorModel,
  DEFAULT_LOSS_WEIGHTS,
  adaptorBatches,
  averageSnapshots,
  fitAdaptor,
  nearestNeighbours,
  type AdaptorBatch,
  type AdaptorLossWeights,
  type AdaptorModelOptions,
  type AdaptorSnapshot,
  type EmbeddingPairs,
  type FitAdaptorOptions,
} from './train.js';
export { ADAPTOR_CONFIG_FILE, ADAPTOR_WEIGHTS_FILE, loadAdaptor, saveAdaptor } from './io.js';
export { adaptorOnnx, withAdaptorOnnx } from './onnx.js';
export { applyPca, fitPca as fitAdaptorPca } from './pca.js';
export {
  compareByDim,
  comparisonRows,
  formatComparison,
  pairLabels,
  selectAdaptor,
  shorteningMethods,
  type CompareOptions,
  type ComparisonTask,
  type EmbeddingTransform,
  type MethodMetrics,
  type ValidationSet,
} from './compare.js';
export { checkRows, selectRows, type Rows } from './rows.js';

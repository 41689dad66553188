export { MrlError, type MrlErrorKind } from './errors.js';
export { defaultNestingDims, resolveNesting, sampleDimIndices, type Nesting, type NestingOptions } from './dims.js';
export { createRandom, nextSeed, permutation, type Random } from './rng.js';
export { parameterCount, prefixVariables, trainableVariables, type HasVariables, type VariableMap } from './module.js';
export { l2Normalize, softmaxCrossEntropy } from './losses.js';
export { gelu } from './ops/gelu.js';
export { batchNormTraining, layerNorm } from './ops/normalize.js';
export { sumTensors } from './ops/sum-tensors.js';
export { prefixSoftmaxCrossEntropy } from './ops/prefix-softmax-ce.js';
export { unstackFirst } from './ops/prefix-logits.js';
export {
  runningSumPrefixLogits,
  SeparateHeads,
  SharedHead,
  slicedPrefixLogits,
  type PrefixHead,
  type SharedHeadForm,
} from './heads.js';
export { ClassificationObjective, type ClassTarget, type PrefixObjective } from './objective.js';
export { MatryoshkaLoss, type MatryoshkaLossOptions, type MatryoshkaLossValue } from './matryoshka-loss.js';
export type { Encoder, EncoderConfig } from './encoder.js';
export { MlpEncoder, type MlpConfig } from './mlp.js';
export { MatryoshkaModel, type SupervisedBatch, type TrainModel } from './model.js';
export { createOptimizer } from './optim/index.js';
export type { Optimizer, OptimizerConfig } from './optim/optimizer.js';
export { SgdOptimizer } from './optim/sgd.js';
export { AdamWOptimizer } from './optim/adamw.js';
export { learningRateAt, validateSchedule, type ScheduleConfig } from './optim/schedule.js';
export { clipByGlobalNorm } from './optim/clip.js';
export { writeFileAtomically } from './io/atomic.js';
export { assignVariables } from './io/assign.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type NamedArray,
  type SafetensorsContent,
  type SafetensorsDtype,
} from './io/safetensors.js';
export {
  checkpointPath,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
  type CheckpointInfo,
  type LoadedCheckpoint,
} from './checkpoint.js';
export {
  Trainer,
  type BatchSource,
  type DisposableBatch,
  type FitResult,
  type TrainerOptions,
  type TrainEvent,
} from './trainer.js';
export { embedDataset, prefixOf, type EmbeddingMatrix } from './evaluate/embeddings.js';
export { headTop1, retrievalMetrics, type RetrievalMetrics, type RetrievalOptions } from './evaluate/metrics.js';
export { formatTable, percent, type Column } from './evaluate/table.js';
export {
  BACKEND_NAMES,
  KERNEL_SOURCES,
  initBackend,
  type BackendInfo,
  type BackendName,
  type BackendOptions,
  type KernelSource,
} from './backend.js';
export {
  loadOnnxRuntimeKernels,
  type NativeKernels,
  type OnnxRuntimeKernelOptions,
} from './kernels/native/onnxruntime.js';
export {
  concatBytes,
  initializer,
  node,
  ONNX_FLOAT,
  ONNX_INT64,
  onnxModel,
  valueInfo,
  type ProtoField,
} from './onnx/proto.js';
export {
  coreModule,
  ENCODER_REGISTRATION,
  OBJECTIVE_REGISTRATION,
  type ClassificationObjectiveConfig,
  type EncoderRegistration,
  type Modality,
  type ObjectiveRegistration,
} from './di.js';
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS, type WasmTrainingKernelOptions } from './kernels/index.js';
export type { RunContext, RunReport } from './run.js';
export {
  checkArrayDataset,
  classificationBatches,
  exampleSize,
  gatherRows,
  headOf,
  type ArrayDataset,
} from './experiments/array-dataset.js';
export {
  embedArrays,
  evaluateClassifier,
  trainClassifier,
  type ClassifierRun,
  type DimRow,
  type HeadKind,
} from './experiments/classification.js';
export {
  INDEX_FILE_MAGIC,
  INDEX_FILE_VERSION,
  MatryoshkaIndex,
  QUERY_BLOCK,
  QUERY_TILE,
  TopKHeap,
  blockedTopK,
  cascadeStages,
  crc32,
  defaultFunnel,
  dotProducts,
  evaluateCascade,
  meanAveragePrecisionAtK,
  openIndex,
  popcount32,
  predictionConfidence,
  quantizeBinary,
  quantizeInt8,
  quantizedOpsPerQuery,
  quantizedOpsPerRow,
  quantizedTopK,
  recallAtK,
  rowBlockSize,
  runCascade,
  saveIndex,
  topK,
  tuneCascadeThresholds,
  validateFunnel,
} from './adaptive/index.js';
export type {
  BinaryPrefix,
  CascadeEvaluation,
  CascadeInput,
  CascadeOptions,
  CascadeRun,
  CascadeStages,
  CascadeTarget,
  ConfidenceMeasure,
  Confidences,
  FunnelConfig,
  FunnelOptions,
  IndexOptions,
  Int8Prefix,
  Int8ScaleMode,
  MatrixView,
  Metric,
  QuantizeSpec,
  QuantizedPrefix,
  RankedHits,
  ScoreKind,
  SearchOptions,
  SearchResult,
  ShortlistRerankOptions,
  StageReport,
  TopKResult,
  TunedCascade,
} from './adaptive/index.js';
export {
  ADAPTOR_CONFIG_FILE,
  ADAPTOR_WEIGHTS_FILE,
  AdaptorModel,
  DEFAULT_LOSS_WEIGHTS,
  MatryoshkaAdaptor,
  PairwiseSimilarityObjective,
  RankingObjective,
  TopKSimilarityObjective,
  adaptorBatches,
  adaptorOnnx,
  applyAdaptor,
  applyPca,
  checkRows,
  compareByDim,
  comparisonRows,
  defaultHidden,
  fitAdaptor,
  fitPca,
  formatComparison,
  loadAdaptor,
  nearestNeighbours,
  pairLabels,
  prefixCosineSimilarity,
  reconstructionLoss,
  saveAdaptor,
  selectRows,
  shorteningMethods,
  similarityTarget,
  symmetricEigen,
  validateAdaptorConfig,
} from './adaptor/index.js';
export type {
  AdaptorBatch,
  AdaptorConfig,
  AdaptorLossWeights,
  AdaptorModelOptions,
  AdaptorWeights,
  CompareOptions,
  ComparisonTask,
  EmbeddingPairs,
  EmbeddingTransform,
  FitAdaptorOptions,
  MethodMetrics,
  Pca,
  RankingTarget,
  Rows,
  SimilarityTarget,
} from './adaptor/index.js';

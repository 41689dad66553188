export { MrlError, type MrlErrorKind } from './errors.js';
export { defaultNestingDims, resolveNesting, sampleDimIndices, type Nesting, type NestingOptions } from './dims.js';
export { createRandom, nextSeed, permutation, type Random } from './rng.js';
export { parameterCount, prefixVariables, trainableVariables, type HasVariables, type VariableMap } from './module.js';
export { l2Normalize, softmaxCrossEntropy } from './losses.js';
export { gelu, geluErf, geluOf, type GeluForm } from './ops/gelu.js';
export { addRelu } from './ops/add-relu.js';
export { type AttentionOptions, multiHeadAttention, multiHeadAttentionOps } from './ops/attention.js';
export { dropout, dropoutMultiplier } from './ops/dropout.js';
export { batchNormTraining, layerNorm, runningMoments } from './ops/normalize.js';
export { sumTensors } from './ops/sum-tensors.js';
export { freeDuringBackward } from '@mrl/kernels';
export { prefixSoftmaxCrossEntropy } from './ops/prefix-softmax-ce.js';
export { chunkedPrefixSoftmaxCrossEntropy, type ChunkedPrefixOptions } from './ops/chunked-mlm-head.js';
export { DEFAULT_VOCAB_CHUNK, IGNORE_INDEX } from '@mrl/kernels';
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
export { Matryoshka2dLoss, type Matryoshka2dLossOptions, type Matryoshka2dLossValue } from './matryoshka-2d.js';
export {
  CoSENTObjective,
  DistillationObjective,
  type ScoredPairTarget,
  type TeacherTarget,
} from './pair-objectives.js';
export type { Encoder, EncoderConfig } from './encoder.js';
export { MlpEncoder, type MlpConfig } from './mlp.js';
export { MatryoshkaModel, type SupervisedBatch, type TrainModel } from './model.js';
export { createOptimizer } from './optim/index.js';
export type { Optimizer, OptimizerConfig } from './optim/optimizer.js';
export { SgdOptimizer } from './optim/sgd.js';
export { AdamWOptimizer } from './optim/adamw.js';
export { learningRateAt, validateSchedule, type ScheduleConfig } from './optim/schedule.js';
export { clipByGlobalNorm } from './optim/clip.js';
export {
  nodeFileSystem,
  setFileSystemLayer,
  writeFileAtomically,
  type FileSystemLayer,
  type WritableFile,
} from './io/atomic.js';
export { explainFsError, fsErrorCode } from './io/fs-errors.js';
export { assignVariables } from './io/assign.js';
export { readEmbeddings } from './io/embeddings.js';
export {
  assertFiniteTensors,
  CHECKSUM_KEY,
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  readSafetensors,
  writeSafetensors,
  type NamedArray,
  type SafetensorsContent,
  type SafetensorsDtype,
  type WidenedDtype,
} from './io/safetensors.js';
export {
  checkpointHealth,
  checkpointPath,
  checkpointStep,
  listCheckpoints,
  loadCheckpoint,
  newestGoodCheckpoint,
  saveCheckpoint,
  setCheckpointsAside,
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
export { fitPca, projectPca, symmetricEigen, type Pca } from './evaluate/pca.js';
export { truncateAndNormalize, type TruncateOptions } from './prefix.js';
export {
  headTop1,
  majorityClass,
  retrievalMetrics,
  type RetrievalMetrics,
  type RetrievalOptions,
} from './evaluate/metrics.js';
export { formatTable, percent, type Column } from './evaluate/table.js';
export {
  assertFiniteRunTable,
  formatRunTable,
  runTableCsv,
  runTableDims,
  runTableHeading,
  sortSeries,
  validateRunTable,
  type RunTable,
  type TableMetric,
  type TableReference,
  type TableRow,
  type TableSeries,
} from './evaluate/run-table.js';
// Backends, kernels and the ONNX writer live in @mrl/kernels (the package below core); core
// re-exports them so that a user of the training library needs one import.
export {
  BACKEND_NAMES,
  KERNEL_SOURCES,
  defaultThreads,
  initBackend,
  loadOnnxRuntimeKernels,
  concatBytes,
  initializer,
  node,
  ONNX_FLOAT,
  ONNX_INT64,
  onnxModel,
  valueInfo,
  EXPORT_OPSET,
  OnnxGraph,
  readOnnxMetadata,
  mlpOnnxModel,
  nestingMetadata,
  registerWasmTrainingKernels,
  WASM_TRAINING_KERNELS,
  type BackendInfo,
  type BackendName,
  type BackendOptions,
  type KernelSource,
  type NativeKernels,
  type OnnxRuntimeKernelOptions,
  type ProtoField,
  type OnnxElementType,
  type WasmTrainingKernelOptions,
} from '@mrl/kernels';
export {
  coreModule,
  ENCODER_REGISTRATION,
  OBJECTIVE_REGISTRATION,
  type ClassificationObjectiveConfig,
  type EncoderRegistration,
  type Modality,
  type ObjectiveRegistration,
} from './di.js';
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
  ADAPTOR_CONFIG_FILE,
  ADAPTOR_WEIGHTS_FILE,
  AdaptorModel,
  DEFAULT_LOSS_WEIGHTS,
  MatryoshkaAdaptor,
  NeighbourDistributionObjective,
  PairwiseSimilarityObjective,
  RankingObjective,
  TopKSimilarityObjective,
  adaptorBatches,
  adaptorOnnx,
  withAdaptorOnnx,
  applyAdaptor,
  applyPca,
  checkRows,
  compareByDim,
  comparisonRows,
  averageSnapshots,
  defaultHidden,
  fitAdaptor,
  formatComparison,
  loadAdaptor,
  nearestNeighbours,
  pairLabels,
  prefixCosineSimilarity,
  reconstructionLoss,
  saveAdaptor,
  selectAdaptor,
  selectRows,
  shorteningMethods,
  similarityTarget,
  validateAdaptorConfig,
} from './adaptor/index.js';
export type {
  AdaptorBatch,
  AdaptorConfig,
  AdaptorLossWeights,
  AdaptorModelOptions,
  AdaptorSnapshot,
  AdaptorWeights,
  CompareOptions,
  ComparisonTask,
  EmbeddingPairs,
  EmbeddingTransform,
  FitAdaptorOptions,
  MethodMetrics,
  RankingTarget,
  Rows,
  SimilarityTarget,
  ValidationSet,
} from './adaptor/index.js';
export { encodeNpy, readNpyHeader, type NpyHeader } from './io/npy.js';
export { featureEncoder, pcaProject } from './experiment/baselines.js';
export {
  BASELINES,
  checkBaselines,
  checkTrainOnly,
  labelDim,
  runPlan,
  type Baseline,
  type RunPlan,
} from './experiment/plan.js';
export { trainerOptions, type TrainDefaults, type TrainSettings } from './experiment/settings.js';
export { dimSeries, writeRunMetrics } from './experiment/table.js';
export {
  checkPrecision,
  EMBEDDING_PRECISIONS,
  encodeEmbeddings,
  quantizationRanges,
  quantizeEmbeddings,
  type EmbeddingPrecision,
  type EncodedEmbeddings,
  type EncodeOptions,
  type QuantizationRanges,
} from './quantize.js';

export { MrlError, type MrlErrorKind } from './errors.js';
export {
  BACKEND_NAMES,
  KERNEL_SOURCES,
  defaultThreads,
  initBackend,
  setModuleLoader,
  type BackendInfo,
  type BackendName,
  type BackendOptions,
  type KernelSource,
  type ModuleLoader,
} from './backend.js';
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS, type WasmTrainingKernelOptions } from './wasm/register.js';
export { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from './wasm/native_softmax_ce.js';
export {
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  type BatchNormTrainingAttrs,
} from './wasm/batch_norm.js';
export { ADD_RELU, RELU_GRAD } from './wasm/add_relu.js';
export { ATTENTION, ATTENTION_GRAD, type AttentionAttrs } from './wasm/native_attention.js';
export { RUNNING_MOMENTS, type RunningMomentsAttrs } from './wasm/running_moments.js';
export { ADAMW_UPDATE, SGD_UPDATE, type AdamWUpdateAttrs, type SgdUpdateAttrs } from './wasm/optimizer_updates.js';
export { GELU, GELU_GRAD, LAYER_NORM, LAYER_NORM_GRAD, layerNormFits } from './wasm/transformer_ops.js';
export { PREFIX_SOFTMAX_CE, PREFIX_SOFTMAX_CE_GRAD, type PrefixSoftmaxAttrs } from './wasm/native_prefix_softmax.js';
export {
  CHUNKED_PREFIX_CE,
  CHUNKED_PREFIX_CE_GRAD,
  DEFAULT_VOCAB_CHUNK,
  IGNORE_INDEX,
  type ChunkedPrefixAttrs,
} from './wasm/native_chunked_prefix_softmax.js';
export { freeDuringBackward, SHAPE_ONLY_SAVED_KERNELS } from './memory/free-during-backward.js';
export {
  BATCH_NORM_SOURCES,
  type BatchNormSource,
  type SgdSource,
  CONVOLUTION_SOURCES,
  type ConvolutionSource,
  MATMUL_SOURCES,
  type MatMulSource,
  loadOnnxRuntimeKernels,
  type NativeKernels,
  type OnnxRuntimeKernelOptions,
} from './native/onnxruntime.js';
export { loadOneDnnConvolutions, oneDnnAvailable, type OneDnnConvolutions } from './native/onednn.js';
export { loadOneDnnMatMul, oneDnnMatMulAvailable, type OneDnnMatMul } from './native/onednn_matmul.js';
export { loadOneDnnBatchNorm, oneDnnBatchNormAvailable, type NativeBatchNorm } from './native/onednn_batch_norm.js';
export { loadOneDnnUpdates, oneDnnUpdatesAvailable, type NativeUpdates } from './native/onednn_updates.js';
export { loadOneDnnRandom, type NativeRandom } from './native/onednn_random.js';
export { DROPOUT_MULTIPLIER, type DropoutMultiplierAttrs } from './wasm/dropout.js';
export {
  dropoutDraw,
  dropoutMultiplierValues,
  dropoutProblem,
  fillDropoutMultiplier,
  philox4x32,
  PHILOX_ROUNDS,
  type DropoutDraw,
} from './random/philox.js';
export {
  loadOneDnnPrefixCe,
  oneDnnPrefixCeAvailable,
  type OneDnnPrefixCe,
  type PrefixCeShape,
} from './native/onednn_prefix_ce.js';
export {
  loadOneDnnPrefixCeFew,
  PREFIX_CE_FEW_MAX_CLASSES,
  type OneDnnPrefixCeFew,
  type PrefixCeFewShape,
} from './native/onednn_prefix_few.js';
export {
  concatBytes,
  initializer,
  node,
  ONNX_FLOAT,
  ONNX_INT32,
  ONNX_INT64,
  onnxModel,
  valueInfo,
  type ProtoField,
} from './onnx/proto.js';
export { EXPORT_OPSET, OnnxGraph, readOnnxMetadata, type OnnxElementType } from './onnx/graph.js';
export { mlpOnnxModel, nestingMetadata, type MlpWeights } from './onnx/mlp.js';

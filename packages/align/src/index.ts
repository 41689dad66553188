export {
  ClipContrastiveObjective,
  contrastiveLabels,
  contrastiveLogits,
  INIT_LOGIT_SCALE,
  MAX_LOGIT_SCALE,
  symmetricCrossEntropy,
  type AlignTarget,
} from './loss.js';
export {
  AlignModel,
  DualEncoder,
  Projection,
  type AlignBatch,
  type AlignInput,
  type DualEncoderConfig,
} from './model.js';
export {
  ALIGN_MODELS,
  alignContainer,
  alignModelOptions,
  alignModule,
  createDualEncoder,
  findRegistration,
  type AlignModelEntry,
  type DualEncoderOptions,
} from './di.js';
export {
  decodePairs,
  dropFailed,
  OPENCLIPART_DEFAULT_DIR,
  pathHash,
  rasterise,
  readOpenclipart,
  readPairsJsonl,
  readSidecarFolder,
  splitPairs,
  svgCaption,
  type PairRecord,
  type PixelSet,
} from './data.js';
export {
  normalisedPrefix,
  pairedRecall,
  zeroShotAccuracy,
  type Embeddings,
  type RecallRow,
  type RetrievalGallery,
} from './evaluate.js';
export {
  ALIGN_GALLERIES,
  checkGallery,
  evaluateAlign,
  fitAlign,
  imageTensor,
  tokenTensor,
  type AlignEvaluation,
  type AlignFitOptions,
  type AlignGallery,
} from './fit.js';
export { encodeImages, encodeTexts, loadAlignRun, readImages, type LoadedAlignModel } from './encode.js';
export {
  ALIGN_CONFIG_FILE,
  type AlignInputSettings,
  ALIGN_TOKENIZER_DIR,
  ALIGN_WEIGHTS_FILE,
  loadAlignModel,
  saveAlignModel,
} from './save.js';

export { parseIdx, readIdx, type IdxArray } from './idx.js';
export {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DEFAULT_DIR,
  loadFashionMnist,
  type ImageSplit,
  type LabelledImages,
} from './fashion-mnist.js';
export { BatchNorm, Conv2d, gelu, LayerNorm, Linear, type Module } from './models/layers.js';
export { MultiHeadAttention, type AttentionConfig } from './models/attention.js';
export { ResNetEncoder, validateResNetConfig, type ResNetConfig } from './models/resnet.js';
export {
  assignTorchvisionResNet,
  loadTorchvisionResNet,
  resnetConfigFromTorchvision,
  torchvisionResNetNames,
} from './models/torchvision.js';
export { resnetOnnxModel, vitOnnxModel } from './models/onnx.js';
export { VitEncoder, validateVitConfig, type VitConfig } from './models/vit.js';
export {
  buildVisionEncoder,
  createVisionEncoder,
  VISION_MODEL_NAMES,
  VISION_MODELS,
  visionModelConfig,
  visionModule,
  type VisionEncoderConfig,
} from './models/registry.js';
export {
  fitVision,
  VISION_BASELINES,
  type VisionBaseline,
  type VisionFitOptions,
  type VisionInputShape,
} from './fit.js';
export {
  hashFraction,
  loadVisionData,
  readImageManifest,
  type VisionData,
  type VisionDataOptions,
} from './data/sources.js';
export {
  corruptImages,
  CORRUPTION_NAMES,
  DEFAULT_CORRUPTIONS,
  parseCorruptions,
  type Corruption,
  type CorruptionName,
} from './eval/corruptions.js';
export { fitPca, projectPca, symmetricEigen, type Pca } from './eval/pca.js';
export { encode, type ImageInputs } from './encode.js';
export { loadVisionModel, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, saveVisionModel } from './save.js';
export {
  centreCropBox,
  decodeImage,
  IMAGENET_MEAN,
  IMAGENET_STD,
  randomResizedCropBox,
  type CropBox,
  type ImageTransform,
} from './data/decode.js';
export {
  decodeImages,
  IMAGE_EXTENSIONS,
  ImageFolderBatches,
  loadImageFolderArrays,
  openImageFolder,
  type ImageFolder,
  type ImageFolderOptions,
} from './data/image-folder.js';

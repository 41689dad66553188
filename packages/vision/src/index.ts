export { parseIdx, readIdx, type IdxArray } from './idx.js';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_DIR, loadFashionMnist, type ImageSplit, type LabelledImages } from './fashion-mnist.js';
export { fitVision, type VisionBaseline, type VisionFitOptions } from './fit.js';

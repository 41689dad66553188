export {
  BERT_SPECIAL_TOKENS,
  bertBaseUncasedVocab,
  wordPieceFromSentencePieceStyle,
  wordPieceTokenizerFiles,
  writeTokenizerFiles,
  type TokenizerFiles,
  type TokenizerJsonOptions,
} from './tokenizer/tokenizer-json.js';
export { padRows, TextTokenizer, type EncodedBatch, type SpecialIds } from './tokenizer/tokenizer.js';
export { preTokenize, trainWordPiece, type WordPieceTrainOptions } from './tokenizer/wordpiece-trainer.js';
export { gatherRows } from './gather.js';
export {
  BERT_CONFIGS,
  BertEncoder,
  bertConfig,
  bertLayerDecay,
  gelu,
  layerNorm,
  poolTokens,
  type BertConfig,
  type BertPooling,
  type TokenBatch,
} from './bert.js';
export {
  bertOnnxModel,
  EXPORT_FORMATS,
  exportTextModel,
  type DimRow,
  type ExportFormat,
  type TextExportOptions,
} from './export.js';
export {
  assignHfBertWeights,
  bertConfigFromHf,
  hfBertConfigJson,
  hfBertNames,
  hfBertTensors,
  loadHfBert,
  loadHfTokenizer,
  readHfConfig,
  type HfBertConfigJson,
  type HfBertLoadOptions,
} from './hf-bert.js';
export {
  maskTokens,
  mlmAccuracy,
  mlmBatch,
  MlmModel,
  TiedMlmObjective,
  type TiedMlmOptions,
  type MaskedTokens,
  type MaskingOptions,
  type MlmBatch,
  type MlmTarget,
} from './mlm.js';
export { InBatchContrastiveObjective, PairModel, type PairBatch, type PairTarget } from './contrastive.js';
export {
  brownDocuments,
  brownSentences,
  mobyDickSentences,
  nlpCorpusSentences,
  PACKAGED_CORPORA,
  packagedCorpus,
  readJsonl,
  readTextLines,
  sotuSentences,
  splitSentences,
  type PackagedCorpus,
  type TextStream,
} from './corpora.js';
export {
  DEFAULT_WORDNET_DIR,
  parseGloss,
  parseSynsetLine,
  readWordNet,
  WORDNET_LEXNAMES,
  writeWordNetFiles,
  type Synset,
  type WordNetFileOptions,
} from './wordnet.js';
export { backboneBatches, OnnxBackboneEncoder, type BackbonePooling, type OnnxBackboneOptions } from './backbone.js';
export { fitText, TEXT_TASKS, type TextFitOptions, type TextTask } from './fit.js';
export { TEXT_ENCODER_REGISTRATIONS, textModule } from './di.js';
export { trainWordPieceTokenizer, type TrainTokenizerOptions } from './tokenizer/train-command.js';
export { readNumberedLines, type LineReadOptions, type NumberedLine } from './data/lines.js';
export { fileFormat, readRecords, TEXT_FILE_FORMATS, type FileRecord, type TextFileFormat } from './data/records.js';
export {
  ArraySource,
  labelOf,
  textOf,
  type LongTextPolicy,
  type TextFieldOptions,
  type TextSource,
} from './data/source.js';
export { LABELS_FILE, LabelMap, loadLabelMap, saveLabelMap } from './data/labels.js';
export { checkTestFraction, hashSplit, hashString } from './data/split.js';
export {
  loadClassificationData,
  readClassificationFile,
  type ClassificationData,
  type ClassificationDataOptions,
  type ClassificationFileOptions,
  type LabelledText,
} from './data/classification.js';
export {
  loadPairData,
  readPairFile,
  type PairData,
  type PairDataOptions,
  type PairFileOptions,
  type TextPair,
} from './data/pairs.js';
export { TEXT_BASELINES, type TextBaseline } from './tasks/baselines.js';
export { fitClassifyFile } from './tasks/classify.js';
export { fitPairsFile } from './tasks/pairs.js';
export { ProjectedEncoder } from './tasks/common.js';
export {
  loadTextModel,
  saveTextModelInfo,
  TEXT_MODEL_FILE,
  type TextModel,
  type TextModelInfo,
} from './tasks/model-file.js';
export {
  encode,
  EMBEDDING_PRECISIONS,
  quantizationRanges,
  quantizeEmbeddings,
  type EmbeddingPrecision,
  type EncodedTexts,
  type EncodeOptions,
  type QuantizationRanges,
} from './encode.js';

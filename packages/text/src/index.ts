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
  type Synset,
} from './wordnet.js';
export { backboneBatches, OnnxBackboneEncoder, type BackbonePooling, type OnnxBackboneOptions } from './backbone.js';
export { fitText, TEXT_TASKS, type TextFitOptions, type TextTask } from './fit.js';
export { TEXT_ENCODER_REGISTRATIONS, textModule } from './di.js';
export { trainWordPieceTokenizer, type TrainTokenizerOptions } from './tokenizer/train-command.js';

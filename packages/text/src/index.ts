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
export { BERT_CONFIGS, BertEncoder, bertConfig, gelu, layerNorm, poolTokens, type BertConfig, type BertPooling, type TokenBatch } from './bert.js';
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

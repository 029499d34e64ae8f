/** Universal Sentence Encoder Lite: loader, tokenizer, classifier and fine-tuning blocks. */
export {
  loadUseLite,
  loadUseLiteSync,
  buildUseLiteEncoder,
  defaultUseLiteDir,
  embedTexts,
  embedTokenLists,
  padTokens,
  UseLiteEncoder,
  USE_LITE_DIM,
  USE_LITE_MAX_TOKENS,
} from './model';
export type { UseLite, LoadUseLiteOptions, TokenBatch } from './model';
export { UseLiteTokenizer, UNK_ID, WORD_BOUNDARY } from './tokenizer';
export type { VocabEntry, TokenizerOptions } from './tokenizer';
export { UseLiteClassifier } from './classifier';
export type { UseLiteClassifierOptions } from './classifier';
export { readTfjsWeights } from './weights';
export type { TfjsTensor } from './weights';
export {
  USE_LITE_TARGETS,
  loraClassifier,
  startBlockFor,
  trainHead,
  trainNonPrivateRows,
  privateStep,
  publicGradientRows,
  accuracyOf,
  lengthBuckets,
  forwardRows,
  useLiteAdapter,
  useLiteDataset,
  loadUseLiteAdapter,
  checkLoraSettings,
} from './finetune';
export type { UseLiteLoraSettings, CachedPart, NonPrivateTrainOptions } from './finetune';

// GPT-2 byte-level BPE tokenizer: public surface.
export { AutoTokenizer, GPT2Tokenizer, cleanUpTokenization } from './tokenizer.js';
export type { BatchEncoding, DecodeOptions, EncodeOptions, FromPretrainedOptions, Side, TokenIds, TokenizerCallOptions, TokenizerOptions } from './tokenizer.js';
export { createStreamingDecoder, TextStreamer } from './streaming.js';
export type { StreamingDecoder, StreamingDecoderOptions, TextStreamerOptions } from './streaming.js';
export { loadTokenizerData } from './load.js';
export type { AddedTokenSpec, TextFileSource, TokenizerData } from './load.js';
export { BYTE_TO_CHAR, bytesToTokenString, tokenStringToBytes } from './byte-level.js';
export { GPT2_PATTERN_SOURCE, pretokenize } from './pretokenize.js';

// gpt2-wasm: GPT-2 on WebAssembly SIMD kernels with threads. Public API (names follow transformers.js).
export * from './errors.js';
export { Tensor } from './model/tensor.js';
export { GPT2PreTrainedModel, GPT2Model, GPT2LMHeadModel, GPT2ForTokenClassification, GPT2ForSequenceClassification, AutoModel, AutoModelForCausalLM } from './model/gpt2.js';
export type { ForwardInputs, ModelOutput, PastKeyValue, PretrainedOptions, ProgressInfo } from './model/gpt2.js';
export type { GPT2Config, GenerationConfig } from './io/config.js';
export { detectFeatures } from './runtime/wasm.js';

// AutoTokenizer as the package exports it: like the tokenizer module's, but a string that is not a local
// directory resolves as a Hub id (or URL) through the same cache as the models.
import { resolveSource } from './io/resolve.js';
import { GPT2Tokenizer, type FromPretrainedOptions, type TextFileSource } from './tokenizer/index.js';

export class AutoTokenizer {
  static from_pretrained(dirOrSource: string | TextFileSource, options: FromPretrainedOptions & { revision?: string } = {}): Promise<GPT2Tokenizer> {
    const { revision, ...rest } = options;
    return GPT2Tokenizer.from_pretrained(dirOrSource, { resolve: (id) => resolveSource(id, { revision, tokenizer: true } as any), ...rest });
  }
}

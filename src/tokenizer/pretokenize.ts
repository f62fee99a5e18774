// GPT-2 pre-tokenization: the text is cut into "words" by one regular expression before BPE runs on each.
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// `\s` is written as \p{White_Space}: that is what `\s` means in the engines the reference tokenizers run on
// (Python's `regex` module, Oniguruma in HF tokenizers, Rust's regex in tiktoken). JavaScript's own `\s` differs
// on two characters: it lacks U+0085 (NEXT LINE) and includes U+FEFF (BYTE ORDER MARK).
//
// Encoding does not run this regex: scanner.ts is a faster hand-written matcher for it, tested against it.

export const GPT2_PATTERN_SOURCE =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";

/** A fresh global regex for the GPT-2 pattern (global regexes carry `lastIndex`, so do not share one across calls). */
export const gpt2Pattern = (): RegExp => new RegExp(GPT2_PATTERN_SOURCE, 'gu');

/** The pre-tokens of `text` as an array, by the regex (the reference for scanner.ts). */
export function pretokenize(text: string): string[] {
  return text.match(gpt2Pattern()) ?? [];
}

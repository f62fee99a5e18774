// Added tokens (GPT-2: <|endoftext|>) are cut out of the text before pre-tokenization and BPE, so their text
// becomes exactly their id. At each position the longest added token wins, leftmost first, as with the
// reference implementations' trie / Aho-Corasick matchers.
import type { AddedTokenSpec } from './load.js';

const WHITESPACE = /\p{White_Space}/u;
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

function alternation(tokens: AddedTokenSpec[]): RegExp | null {
  if (tokens.length === 0) return null;
  const sorted = [...new Set(tokens.map((t) => t.content))].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegex).join('|'), 'g');
}

export class AddedTokenSplitter {
  private readonly byContent = new Map<string, AddedTokenSpec>();
  /** Matches every added token. */
  private readonly all: RegExp | null;
  /** Matches only the non-special ones (used when special tokens are to be read as plain text). */
  private readonly plainOnly: RegExp | null;

  constructor(tokens: AddedTokenSpec[]) {
    for (const t of tokens) if (!this.byContent.has(t.content)) this.byContent.set(t.content, t);
    const unique = [...this.byContent.values()];
    this.all = alternation(unique);
    this.plainOnly = alternation(unique.filter((t) => !t.special));
  }

  /**
   * Walk `text` as alternating plain segments and added tokens. `withSpecial` false leaves special tokens in the
   * text (Hugging Face `split_special_tokens=True`). Plain segments may be empty and are then not reported.
   */
  split(text: string, withSpecial: boolean, onText: (segment: string) => void, onToken: (id: number) => void): void {
    const re = withSpecial ? this.all : this.plainOnly;
    if (re === null || text.length === 0) {
      if (text.length > 0) onText(text);
      return;
    }
    re.lastIndex = 0;
    let from = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const tok = this.byContent.get(m[0])!;
      let start = m.index, end = start + m[0].length;
      if (tok.lstrip) while (start > from && WHITESPACE.test(text[start - 1])) start--;
      if (tok.rstrip) while (end < text.length && WHITESPACE.test(text[end])) end++;
      if (start > from) onText(text.slice(from, start));
      onToken(tok.id);
      from = end;
      re.lastIndex = end;
    }
    if (from < text.length) onText(text.slice(from));
  }

  /** Whether any added token exists at all. */
  get empty(): boolean { return this.all === null; }
}

// Completion text as tokens arrive, with OpenAI's stop semantics: the text ends just before the first stop
// sequence, which is not included. While streaming, text that could be the start of a stop sequence is held back
// until the next tokens show whether it is one, so a client never receives part of a stop sequence. Characters
// split over several tokens are held back too (the streaming decoder never cuts a UTF-8 character).
import { createStreamingDecoder, type StreamingDecoder } from '../tokenizer/streaming.js';
import type { GPT2Tokenizer } from '../tokenizer/tokenizer.js';

export class CompletionText {
  private readonly decoder: StreamingDecoder;
  /** Decoded but not yet released text. */
  private held = '';
  /** A stop sequence was found: nothing more is released. */
  stopped = false;
  /** Characters released so far. */
  sentLength = 0;

  constructor(tokenizer: GPT2Tokenizer, private readonly stops: string[]) {
    this.decoder = createStreamingDecoder(tokenizer, { skip_special_tokens: true });
  }

  /** Characters decoded so far, released or held: where the next token's text starts. */
  get decodedLength(): number {
    return this.sentLength + this.held.length;
  }

  /** Adds one token; returns the text that is now safe to send ('' while held back). */
  push(id: number): string {
    if (this.stopped) return '';
    this.held += this.decoder.push(id);
    return this.sent(this.release(false));
  }

  /** End of generation: the rest of the text (up to a stop sequence if one completes now). */
  finish(): string {
    if (this.stopped) return '';
    this.held += this.decoder.flush();
    return this.sent(this.release(true));
  }

  private sent(text: string): string {
    this.sentLength += text.length;
    return text;
  }

  private release(final: boolean): string {
    const h = this.held;
    let cut = -1;
    for (const s of this.stops) {
      const i = h.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.held = '';
      return h.slice(0, cut);
    }
    if (final) { this.held = ''; return h; }
    // keep the longest tail of the text that a stop sequence could begin with
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, h.length); k > keep; k--) {
        if (h.endsWith(s.slice(0, k))) { keep = k; break; }
      }
    }
    this.held = h.slice(h.length - keep);
    return h.slice(0, h.length - keep);
  }
}

// The vocabulary and the merge rules of a byte-level BPE held in a few typed arrays instead of as JavaScript
// strings: the token strings are UTF-16 units in one pool, found through an open-addressing hash table, and
// merges.txt stays one string with the bounds of each rule's two halves.
// Why: an edge isolate (128 MB, wasm memory included) counts the V8 heap. A Map of GPT-2's 50 257 token strings
// costs ~4 MB of heap for as long as the tokenizer lives, and building it through JSON.parse (a 50 000-property
// object), Object.entries, split('\n') and per-merge string pairs left ~60 MB of garbage on the heap while
// loading. vocab.json is read straight into the pool here (readVocabJson), merges.txt into bounds
// (readMergesText), and the BPE looks its symbols up by ranges of the text: no string per token or merge.

/** Grows `a` to hold at least `n` elements, keeping its contents. */
function grow<T extends Int32Array | Uint16Array>(a: T, n: number): T {
  if (n <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(n, a.length * 2, 16));
  b.set(a);
  return b;
}

const FNV_OFFSET = 0x811c9dc5 | 0;
const fnv = (h: number, unit: number) => Math.imul(h ^ unit, 0x01000193);

/** A string of at most 8192 units per call to String.fromCharCode (argument count limits). */
function unitsToString(units: Uint16Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i += 8192) s += String.fromCharCode.apply(null, units.subarray(i, Math.min(end, i + 8192)) as unknown as number[]);
  return s;
}

/**
 * token string → id, as a read-only Map (iteration in the order the file listed the tokens, as a Map built from
 * its JSON object would be), plus lookups by ranges of a text and the token string of an id.
 */
export class Vocab implements ReadonlyMap<string, number> {
  /** Token strings, one after another; entry e is units[starts[e], starts[e + 1]). */
  private units = new Uint16Array(1 << 12);
  private starts = new Int32Array(1 << 10);
  private ids = new Int32Array(1 << 10);
  private hashes = new Int32Array(1 << 10);
  private count = 0;
  /** Open addressing: entry + 1 per slot, 0 for an empty slot. */
  private table = new Int32Array(1 << 10);
  private bits = 10;
  /** Iteration order of the entries when it is not the insertion order. */
  private order: Int32Array | null = null;
  /** The entry of each id (the first in iteration order when tokens share an id), -1 for none; built by seal(). */
  private entryOfId = new Int32Array(0);
  /** One past the largest id. */
  idLimit = 0;
  /** Longest token, in UTF-16 units. */
  maxLength = 0;

  /** A vocabulary from [token, id] pairs (a Map, Object.entries); a token given twice keeps its last id. */
  static from(entries: Iterable<readonly [string, number]>): Vocab {
    const v = new Vocab();
    for (const [tok, id] of entries) {
      for (let i = 0; i < tok.length; i++) v.pushUnit(tok.charCodeAt(i));
      v.commit(id);
    }
    return v.seal();
  }

  get size(): number { return this.count; }

  // ---- building: push the units of a token at the end of the pool, then commit it with its id

  private pending = 0; // units pushed for the token being built
  /** Appends one UTF-16 unit to the token being built. */
  pushUnit(u: number): void {
    const at = this.starts[this.count] + this.pending;
    if (at >= this.units.length) this.units = grow(this.units, at + 1);
    this.units[at] = u;
    this.pending++;
  }
  /** Drops the units pushed since the last commit. */
  discard(): void { this.pending = 0; }

  /** Ends the token being built: a new entry, or a new id for the same token already there (its place is kept). */
  commit(id: number): void {
    const start = this.starts[this.count], n = this.pending;
    this.pending = 0;
    let h = FNV_OFFSET;
    for (let i = start; i < start + n; i++) h = fnv(h, this.units[i]);
    const e = this.find(h, this.units, start, start + n, 0, 0);
    if (e >= 0) { this.ids[e] = id; return; }
    const c = this.count;
    if (c + 2 > this.starts.length) {
      this.starts = grow(this.starts, c + 2);
      this.ids = grow(this.ids, this.starts.length);
      this.hashes = grow(this.hashes, this.starts.length);
    }
    this.ids[c] = id;
    this.hashes[c] = h;
    this.starts[c + 1] = start + n;
    this.count = c + 1;
    if (n > this.maxLength) this.maxLength = n;
    if (this.count * 2 > this.table.length) this.rehash(this.bits + 1);
    else this.place(c);
  }

  /** Iterate in this order of entries (insertion indexes) instead of insertion order. */
  reorder(order: Int32Array): void { this.order = order; }

  /** Ends building: the id → entry index. */
  seal(): this {
    let limit = 0;
    for (let e = 0; e < this.count; e++) if (this.ids[e] + 1 > limit) limit = this.ids[e] + 1;
    this.idLimit = limit;
    this.entryOfId = new Int32Array(limit).fill(-1);
    for (let k = 0; k < this.count; k++) {
      const e = this.order ? this.order[k] : k;
      if (this.entryOfId[this.ids[e]] < 0) this.entryOfId[this.ids[e]] = e;
    }
    // the pool and entry arrays keep their growth slack no longer than needed
    this.units = this.units.slice(0, this.starts[this.count]);
    this.starts = this.starts.slice(0, this.count + 1);
    this.ids = this.ids.slice(0, this.count);
    this.hashes = this.hashes.slice(0, this.count);
    return this;
  }

  private place(e: number): void {
    const mask = this.table.length - 1;
    let s = Math.imul(this.hashes[e], 0x9e3779b1) >>> (32 - this.bits);
    while (this.table[s] !== 0) s = (s + 1) & mask;
    this.table[s] = e + 1;
  }

  private rehash(bits: number): void {
    this.bits = bits;
    this.table = new Int32Array(1 << bits);
    for (let e = 0; e < this.count; e++) this.place(e);
  }

  /**
   * The entry whose token is src[a0, a1) + src[b0, b1) (`src` a string or a unit array; the second range may be
   * empty) with hash `h`, or -1. Units are compared only when the hash and the length match.
   */
  private find(h: number, src: string | Uint16Array, a0: number, a1: number, b0: number, b1: number): number {
    const { table, units, starts } = this;
    const mask = table.length - 1, na = a1 - a0, n = na + b1 - b0;
    for (let s = Math.imul(h, 0x9e3779b1) >>> (32 - this.bits); ; s = (s + 1) & mask) {
      const e = table[s] - 1;
      if (e < 0) return -1;
      if (this.hashes[e] !== h || starts[e + 1] - starts[e] !== n) continue;
      const at = starts[e];
      let i = 0;
      for (; i < n; i++) {
        const k = i < na ? a0 + i : b0 + i - na;
        if (units[at + i] !== (typeof src === 'string' ? src.charCodeAt(k) : src[k])) break;
      }
      if (i === n) return e;
    }
  }

  // ---- lookups

  /** The id of text[start, end), or -1. */
  idOfRange(text: string, start: number, end: number): number {
    let h = FNV_OFFSET;
    for (let i = start; i < end; i++) h = fnv(h, text.charCodeAt(i));
    const e = this.find(h, text, start, end, end, end);
    return e < 0 ? -1 : this.ids[e];
  }

  /** The id of text[a0, a1) + text[b0, b1) (a merge's result), or -1; no string is made. */
  idOfPair(text: string, a0: number, a1: number, b0: number, b1: number): number {
    let h = FNV_OFFSET;
    for (let i = a0; i < a1; i++) h = fnv(h, text.charCodeAt(i));
    for (let i = b0; i < b1; i++) h = fnv(h, text.charCodeAt(i));
    const e = this.find(h, text, a0, a1, b0, b1);
    return e < 0 ? -1 : this.ids[e];
  }

  get(token: string): number | undefined {
    const id = this.idOfRange(token, 0, token.length);
    return id < 0 ? undefined : id;
  }
  has(token: string): boolean { return this.idOfRange(token, 0, token.length) >= 0; }

  /** Whether some token has this id. */
  hasId(id: number): boolean { return id >= 0 && id < this.idLimit && this.entryOfId[id] >= 0; }

  /** The token string of `id` (the first listed, when tokens share it), or undefined. */
  token(id: number): string | undefined {
    if (!this.hasId(id)) return undefined;
    const e = this.entryOfId[id];
    return unitsToString(this.units, this.starts[e], this.starts[e + 1]);
  }

  /** Token `id` is pool[start(id), end(id)) (when hasId(id)): read its units without a view per token. */
  get pool(): Uint16Array { return this.units; }
  start(id: number): number { return this.starts[this.entryOfId[id]]; }
  end(id: number): number { return this.starts[this.entryOfId[id] + 1]; }

  // ---- ReadonlyMap

  *entries(): MapIterator<[string, number]> {
    for (let k = 0; k < this.count; k++) {
      const e = this.order ? this.order[k] : k;
      yield [unitsToString(this.units, this.starts[e], this.starts[e + 1]), this.ids[e]];
    }
  }
  *keys(): MapIterator<string> { for (const [k] of this.entries()) yield k; }
  *values(): MapIterator<number> { for (let k = 0; k < this.count; k++) yield this.ids[this.order ? this.order[k] : k]; }
  [Symbol.iterator](): MapIterator<[string, number]> { return this.entries(); }
  forEach(fn: (value: number, key: string, map: ReadonlyMap<string, number>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
}

/** Merge rules in rank order, each two ranges of one text ("left right" lines of merges.txt). */
export class MergeRules implements Iterable<[string, string]> {
  /** Rule r is text[b[4r], b[4r+1]) + text[b[4r+2], b[4r+3]). */
  constructor(readonly text: string, readonly bounds: Int32Array, readonly length: number) {}

  /** Rules from pairs of strings (tokenizer.json, GGUF metadata). */
  static fromPairs(pairs: ReadonlyArray<readonly [string, string]>): MergeRules {
    const bounds = new Int32Array(pairs.length * 4);
    const parts: string[] = [];
    let at = 0;
    for (let r = 0; r < pairs.length; r++) {
      const [a, b] = pairs[r];
      bounds[4 * r] = at; bounds[4 * r + 1] = at + a.length;
      bounds[4 * r + 2] = at + a.length + 1; bounds[4 * r + 3] = at + a.length + 1 + b.length;
      parts.push(a, ' ', b, '\n');
      at += a.length + b.length + 2;
    }
    return new MergeRules(parts.join(''), bounds, pairs.length);
  }

  /** Rule r as its two strings. */
  pair(r: number): [string, string] {
    const b = this.bounds, t = this.text;
    return [t.slice(b[4 * r], b[4 * r + 1]), t.slice(b[4 * r + 2], b[4 * r + 3])];
  }
  map<T>(fn: (pair: [string, string], rank: number) => T): T[] {
    const out = new Array<T>(this.length);
    for (let r = 0; r < this.length; r++) out[r] = fn(this.pair(r), r);
    return out;
  }
  *[Symbol.iterator](): Iterator<[string, string]> { for (let r = 0; r < this.length; r++) yield this.pair(r); }
}

/**
 * merges.txt: "#version" lines and empty lines are skipped, every other line is "left right" (one space, both
 * halves non-empty). A bad line is reported by `bad(line, lineNumber)`, which throws.
 */
export function readMergesText(text: string, bad: (line: string, lineNumber: number) => never): MergeRules {
  let bounds = new Int32Array(4096);
  let n = 0, lineNo = 0;
  for (let start = 0; start <= text.length; ) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = text.length;
    lineNo++;
    let end = nl;
    if (end > start && text.charCodeAt(end - 1) === 13) end--; // a trailing \r
    if (end > start && !text.startsWith('#version', start)) {
      const sp = text.indexOf(' ', start);
      const next = sp < 0 ? -1 : text.indexOf(' ', sp + 1);
      if (!(sp > start && sp < end - 1 && (next < 0 || next >= end))) bad(text.slice(start, end), lineNo);
      if (4 * n + 4 > bounds.length) bounds = grow(bounds, 4 * n + 4);
      bounds[4 * n] = start; bounds[4 * n + 1] = sp; bounds[4 * n + 2] = sp + 1; bounds[4 * n + 3] = end;
      n++;
    }
    start = nl + 1;
  }
  return new MergeRules(text, bounds.slice(0, 4 * n), n);
}

const ws = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;
const hex = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);

/**
 * vocab.json (a JSON object of token → non-negative integer id) read straight into a Vocab, or null when the
 * text is anything else (bad JSON, another value type, a number with a sign, fraction or exponent, ids past
 * `maxId`): the caller then parses it with JSON.parse for the exact error. The entries iterate in the order
 * Object.entries(JSON.parse(text)) gives: keys that are array indexes first, ascending, then the rest as listed.
 */
export function readVocabJson(text: string, maxId: number): Vocab | null {
  const v = new Vocab();
  const len = text.length;
  let i = 0;
  const skip = () => { while (i < len && ws(text.charCodeAt(i))) i++; };
  skip();
  if (text.charCodeAt(i) !== 123 /* { */) return null;
  i++;
  skip();
  let indexKeys: number[] | null = null; // [entry, index value] of keys that are array indexes
  if (text.charCodeAt(i) === 125 /* } */) i++;
  else {
    for (;;) {
      if (text.charCodeAt(i) !== 34 /* " */) return null;
      i++;
      // the key, escapes decoded, into the vocabulary's pool; an array index is noted (digits, no leading 0)
      let index = 0, isIndex = true, units = 0;
      for (;;) {
        if (i >= len) return null;
        let c = text.charCodeAt(i++);
        if (c === 34) break;
        if (c < 32) return null;
        if (c === 92 /* \ */) {
          const e = text.charCodeAt(i++);
          if (e === 117 /* u */) {
            const a = hex(text.charCodeAt(i)), b = hex(text.charCodeAt(i + 1)), d = hex(text.charCodeAt(i + 2)), f = hex(text.charCodeAt(i + 3));
            if ((a | b | d | f) < 0) return null;
            c = (a << 12) | (b << 8) | (d << 4) | f;
            i += 4;
          } else if (e === 34 || e === 92 || e === 47) c = e;
          else if (e === 98) c = 8;
          else if (e === 102) c = 12;
          else if (e === 110) c = 10;
          else if (e === 114) c = 13;
          else if (e === 116) c = 9;
          else return null;
        }
        if (isIndex) {
          if (c < 48 || c > 57 || (units === 1 && index === 0)) isIndex = false;
          else index = index * 10 + (c - 48);
        }
        v.pushUnit(c);
        units++;
      }
      if (units === 0 || index > 4294967294) isIndex = false;
      skip();
      if (text.charCodeAt(i) !== 58 /* : */) return null;
      i++;
      skip();
      // the id: digits only (no sign, fraction or exponent), no leading zero
      const d0 = i;
      let id = 0;
      while (i < len) {
        const c = text.charCodeAt(i);
        if (c < 48 || c > 57) break;
        id = id * 10 + (c - 48);
        i++;
      }
      const c = text.charCodeAt(i);
      if (i === d0 || i - d0 > 9 || (i - d0 > 1 && text.charCodeAt(d0) === 48) || c === 46 || c === 101 || c === 69 || id > maxId) return null;
      const before = v.size;
      v.commit(id);
      if (isIndex && v.size > before) (indexKeys ??= []).push(before, index);
      skip();
      const sep = text.charCodeAt(i++);
      if (sep === 125) break;
      if (sep !== 44 /* , */) return null;
      skip();
    }
  }
  skip();
  if (i !== len) return null;
  if (indexKeys) {
    // Object.entries lists array-index keys first, in ascending order; a Map built from it iterates so
    const order = new Int32Array(v.size);
    const pairs: [number, number][] = [];
    for (let k = 0; k < indexKeys.length; k += 2) pairs.push([indexKeys[k + 1], indexKeys[k]]);
    pairs.sort((a, b) => a[0] - b[0]);
    const first = new Uint8Array(v.size);
    let w = 0;
    for (const [, e] of pairs) { order[w++] = e; first[e] = 1; }
    for (let e = 0; e < v.size; e++) if (!first[e]) order[w++] = e;
    v.reorder(order);
  }
  return v.seal();
}

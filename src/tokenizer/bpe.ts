// Byte-level BPE over symbol ids: a word's UTF-8 bytes become byte symbols, then the adjacent pair with the
// lowest merge rank is merged, all of its non-overlapping occurrences left to right in one round, until no
// adjacent pair has a rank. That is the reference GPT2Tokenizer.bpe() loop, done on integer ids with a
// hash table of pairs instead of on tuples of strings.
import { InputError, TokenizerError } from '../errors.js';
import { BYTE_TO_CHAR, utf8EncodeInto } from './byte-level.js';
import { pretokenEnd } from './scanner.js';
import { MergeRules, Vocab } from './vocab.js';

export interface BpeModelInit {
  /** token string → id (vocab.json, or model.vocab of tokenizer.json); a Vocab is used as it is. */
  vocab: ReadonlyMap<string, number>;
  /** Merge rules in rank order (rank = index). A pair listed twice takes its last rank, as in the reference. */
  merges: MergeRules | ReadonlyArray<readonly [string, string]>;
  /** Id for a BPE result that is not in the vocabulary (GPT-2: unk is <|endoftext|>); null → such a word throws. */
  unkId?: number | null;
  /** How many distinct words to remember (default 100 000); 0 turns the cache off. */
  cacheCapacity?: number;
  /** tokenizer.json `ignore_merges`: a word that is itself a vocabulary token is not merged. */
  ignoreMerges?: boolean;
}

/** Words up to this many bytes are merged with a flat array scan; longer ones with a heap. */
const FLAT_LIMIT = 96;
/** Words longer than this many UTF-16 units are not cached. */
const CACHE_MAX_WORD = 256;
const POS_BITS = 2 ** 26;
/** Longest word (in bytes) the heap path can index. */
const MAX_WORD_BYTES = POS_BITS - 1;

/** Thrown inside an encode with an output limit (beginOutput(limit)) once the text is known to exceed it. */
export class OutputLimitError extends InputError {
  constructor(readonly limit: number) { super(`more than ${limit} tokens`); }
}

/** BPE ended on a symbol the vocabulary lacks and there is no unk token (a TokenizerError: the files are at fault). */
export class UnknownTokenError extends TokenizerError {
  constructor(readonly token: string) { super(`BPE produced "${token}", which is not in the vocabulary`); }
}

export class BpeModel {
  readonly vocab: Vocab;
  /** One past the largest vocabulary id. Symbols below this are vocabulary ids. */
  readonly idLimit: number;
  readonly mergeCount: number;

  private readonly unkId: number;
  private readonly ignoreMerges: boolean;
  private readonly byteSym = new Int32Array(256);
  /** Symbols past idLimit: strings that merges produce or use but the vocabulary lacks. */
  private readonly extraNames: string[] = [];
  // Open-addressing pair table: (keyA, keyB) → rank and merged symbol.
  private readonly bits: number;
  private readonly mask: number;
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  private readonly rank: Int32Array;
  private readonly merged: Int32Array;

  // Word cache: open addressing on an FNV-1a hash of the word's UTF-16 units, probed straight from the input
  // text (no substring, no string hashing on a hit). Keys live in one UTF-16 pool; `single` holds the id of
  // one-token words, else -1 and `multi` holds the ids. Grows by doubling up to the capacity, then starts over.
  private readonly cacheCapacity: number;
  private cacheBits = 0;
  private cacheSize = 0;
  private cacheHash = new Int32Array(0);
  /** Pool offset of each slot's key, -1 for an empty slot. */
  private cacheOff = new Int32Array(0);
  private cacheLen = new Int32Array(0);
  private cacheSingle = new Int32Array(0);
  private cacheMulti: (number[] | undefined)[] = [];
  private pool = new Uint16Array(0);
  private poolUsed = 0;
  // Output ids of the encode in progress (filled by beginOutput/pushId/encodeText, read by takeOutput).
  private out = new Int32Array(1024);
  private outLen = 0;
  /** Most ids the encode in progress may produce before it stops with OutputLimitError. */
  private outLimit = Infinity;
  /** Longest symbol (vocabulary token or merge result) in bytes: a word of n bytes gives at least n / this ids. */
  private readonly maxSymbolBytes: number;
  // Scratch buffers, grown on demand.
  private syms = new Int32Array(256);
  private slots = new Int32Array(256);

  constructor(init: BpeModelInit) {
    const vocab = this.vocab = init.vocab instanceof Vocab ? init.vocab : Vocab.from(init.vocab);
    this.unkId = init.unkId ?? -1;
    this.ignoreMerges = init.ignoreMerges ?? false;
    this.cacheCapacity = init.cacheCapacity ?? 100_000;
    const limit = this.idLimit = vocab.idLimit;

    // Symbols are looked up by ranges of the merges' text, so no string is made for a rule unless its symbol
    // is missing from the vocabulary (an "extra": rare, GPT-2 has none).
    const extra = new Map<string, number>();
    const extraOf = (s: string): number => {
      let x = extra.get(s);
      if (x === undefined) {
        x = limit + this.extraNames.length;
        this.extraNames.push(s);
        extra.set(s, x);
      }
      return x;
    };
    const symbolOf = (t: string, a: number, b: number): number => {
      const id = vocab.idOfRange(t, a, b);
      return id >= 0 ? id : extraOf(t.slice(a, b));
    };
    for (let b = 0; b < 256; b++) this.byteSym[b] = symbolOf(BYTE_TO_CHAR[b], 0, 1);

    const merges = init.merges instanceof MergeRules ? init.merges : MergeRules.fromPairs(init.merges);
    this.mergeCount = merges.length;
    let bits = 4;
    while (1 << bits < merges.length * 2) bits++;
    this.bits = bits;
    this.mask = (1 << bits) - 1;
    this.keyA = new Int32Array(1 << bits).fill(-1);
    this.keyB = new Int32Array(1 << bits);
    this.rank = new Int32Array(1 << bits);
    this.merged = new Int32Array(1 << bits);
    const { text, bounds } = merges;
    for (let r = 0; r < merges.length; r++) {
      const a0 = bounds[4 * r], a1 = bounds[4 * r + 1], b0 = bounds[4 * r + 2], b1 = bounds[4 * r + 3];
      const sa = symbolOf(text, a0, a1), sb = symbolOf(text, b0, b1);
      let s = this.hash(sa, sb);
      while (this.keyA[s] !== -1 && !(this.keyA[s] === sa && this.keyB[s] === sb)) s = (s + 1) & this.mask;
      this.keyA[s] = sa;
      this.keyB[s] = sb;
      this.rank[s] = r;
      const ab = vocab.idOfPair(text, a0, a1, b0, b1);
      this.merged[s] = ab >= 0 ? ab : extraOf(text.slice(a0, a1) + text.slice(b0, b1));
    }
    let longest = Math.max(1, vocab.maxLength);
    for (const tok of this.extraNames) if (tok.length > longest) longest = tok.length;
    this.maxSymbolBytes = longest;
  }

  private hash(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) + b) | 0;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    return (h ^ (h >>> 13)) >>> (32 - this.bits);
  }

  /** Table slot of the merge rule for (a, b), or -1. */
  private slotOf(a: number, b: number): number {
    const keyA = this.keyA, keyB = this.keyB, mask = this.mask;
    let s = this.hash(a, b);
    for (;;) {
      const k = keyA[s];
      if (k === a && keyB[s] === b) return s;
      if (k === -1) return -1;
      s = (s + 1) & mask;
    }
  }

  /** The string a symbol stands for (table characters). */
  symbolName(sym: number): string {
    return sym < this.idLimit ? this.vocab.token(sym) ?? '' : this.extraNames[sym - this.idLimit];
  }

  /** Start collecting the ids of one encode call; past `limit` ids it stops with OutputLimitError. */
  beginOutput(limit = Infinity): void { this.outLen = 0; this.outLimit = limit; }

  /** Append one id to the output. */
  pushId(id: number): void {
    if (this.outLen >= this.outLimit) throw new OutputLimitError(this.outLimit);
    if (this.outLen === this.out.length) this.growOutput(1);
    this.out[this.outLen++] = id;
  }

  /** The collected ids as a plain array. */
  takeOutput(): number[] {
    const n = this.outLen, src = this.out;
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) ids[i] = src[i];
    this.outLen = 0;
    this.outLimit = Infinity;
    if (src.length > 1 << 20) this.out = new Int32Array(1024); // do not keep a huge buffer alive
    return ids;
  }

  private growOutput(extra: number): void {
    const bigger = new Int32Array(Math.max(this.out.length * 2, this.outLen + extra));
    bigger.set(this.out.subarray(0, this.outLen));
    this.out = bigger;
  }

  /** Append the ids of `text` to the output, cut into words by the GPT-2 pre-tokenization regex. */
  encodeText(text: string): void {
    const len = text.length;
    for (let i = 0; i < len; ) {
      const end = pretokenEnd(text, i, len);
      this.encodeRange(text, i, end);
      i = end;
    }
  }

  /** Append the ids of one word, text[start, end), to the output. */
  encodeRange(text: string, start: number, end: number): void {
    // a UTF-16 unit is at least one UTF-8 byte: a word that cannot fit the limit is not merged at all
    if (this.outLen + Math.ceil((end - start) / this.maxSymbolBytes) > this.outLimit) throw new OutputLimitError(this.outLimit);
    let h = 0x811c9dc5 | 0;
    for (let k = start; k < end; k++) h = Math.imul(h ^ text.charCodeAt(k), 0x01000193);
    const n = end - start;
    let slot = -1;
    if (this.cacheBits > 0) {
      const offs = this.cacheOff, hashes = this.cacheHash, lens = this.cacheLen, pool = this.pool;
      const mask = (1 << this.cacheBits) - 1;
      slot = Math.imul(h, 0x9e3779b1) >>> (32 - this.cacheBits);
      for (;;) {
        const off = offs[slot];
        if (off < 0) break;
        if (hashes[slot] === h && lens[slot] === n) {
          let k = 0;
          while (k < n && pool[off + k] === text.charCodeAt(start + k)) k++;
          if (k === n) {
            const id = this.cacheSingle[slot];
            if (id >= 0) {
              if (this.outLen === this.out.length) this.growOutput(1);
              this.out[this.outLen++] = id;
            } else {
              this.emitMany(this.cacheMulti[slot]!);
            }
            return;
          }
        }
        slot = (slot + 1) & mask;
      }
    }
    const ids = this.encodeWordUncached(text.slice(start, end));
    this.emitMany(ids);
    if (n <= CACHE_MAX_WORD && this.cacheCapacity > 0) this.cacheInsert(h, text, start, n, ids, slot);
  }

  private emitMany(ids: number[]): void {
    if (this.outLen + ids.length > this.outLimit) throw new OutputLimitError(this.outLimit);
    if (this.outLen + ids.length > this.out.length) this.growOutput(ids.length);
    const out = this.out;
    let n = this.outLen;
    for (let j = 0; j < ids.length; j++) out[n++] = ids[j];
    this.outLen = n;
  }

  private cacheInsert(h: number, text: string, start: number, n: number, ids: number[], slot: number): void {
    if (this.cacheBits === 0) { this.cacheReset(12); slot = -1; }
    else if (this.cacheSize >= this.cacheCapacity) { this.cacheReset(this.cacheBits); slot = -1; } // full: start over
    else if ((this.cacheSize + 1) * 2 > 1 << this.cacheBits) { this.cacheReset(this.cacheBits + 1, true); slot = -1; }
    const mask = (1 << this.cacheBits) - 1;
    if (slot < 0) {
      slot = Math.imul(h, 0x9e3779b1) >>> (32 - this.cacheBits);
      while (this.cacheOff[slot] >= 0) slot = (slot + 1) & mask;
    }
    if (this.poolUsed + n > this.pool.length) {
      const bigger = new Uint16Array(Math.max(this.pool.length * 2, this.poolUsed + n, 1 << 16));
      bigger.set(this.pool.subarray(0, this.poolUsed));
      this.pool = bigger;
    }
    const off = this.poolUsed;
    for (let k = 0; k < n; k++) this.pool[off + k] = text.charCodeAt(start + k);
    this.poolUsed += n;
    this.cacheOff[slot] = off;
    this.cacheLen[slot] = n;
    this.cacheHash[slot] = h;
    this.cacheSingle[slot] = ids.length === 1 ? ids[0] : -1;
    this.cacheMulti[slot] = ids.length === 1 ? undefined : ids;
    this.cacheSize++;
  }

  /** Make an empty table of 2^bits slots, moving the current entries into it when `keep`. */
  private cacheReset(bits: number, keep = false): void {
    const oldOff = this.cacheOff, oldLen = this.cacheLen, oldHash = this.cacheHash, oldSingle = this.cacheSingle, oldMulti = this.cacheMulti;
    const size = 1 << bits, mask = size - 1;
    this.cacheBits = bits;
    this.cacheOff = new Int32Array(size).fill(-1);
    this.cacheLen = new Int32Array(size);
    this.cacheHash = new Int32Array(size);
    this.cacheSingle = new Int32Array(size);
    this.cacheMulti = new Array(size).fill(undefined);
    this.cacheSize = 0;
    if (!keep) { this.poolUsed = 0; return; }
    for (let i = 0; i < oldOff.length; i++) {
      if (oldOff[i] < 0) continue;
      let s = Math.imul(oldHash[i], 0x9e3779b1) >>> (32 - bits);
      while (this.cacheOff[s] >= 0) s = (s + 1) & mask;
      this.cacheOff[s] = oldOff[i];
      this.cacheLen[s] = oldLen[i];
      this.cacheHash[s] = oldHash[i];
      this.cacheSingle[s] = oldSingle[i];
      this.cacheMulti[s] = oldMulti[i];
      this.cacheSize++;
    }
  }

  /** Number of words in the cache. */
  get cachedWords(): number { return this.cacheSize; }

  /** Ids of one pre-token, without the cache. `forceHeap` is for tests of the long-word path. */
  encodeWordUncached(word: string, forceHeap = false): number[] {
    if (this.syms.length < word.length * 3) {
      const cap = Math.max(word.length * 3, this.syms.length * 2);
      this.syms = new Int32Array(cap);
      this.slots = new Int32Array(cap);
    }
    const syms = this.syms;
    let n = utf8EncodeInto(word, syms);
    if (n > MAX_WORD_BYTES) throw new InputError(`encode: a single pre-token of ${n} bytes is longer than the ${MAX_WORD_BYTES}-byte limit`);
    if (this.ignoreMerges) {
      let spelled = '';
      for (let i = 0; i < n; i++) spelled += BYTE_TO_CHAR[syms[i]];
      const whole = this.vocab.get(spelled);
      if (whole !== undefined) return [whole];
    }
    const byteSym = this.byteSym;
    for (let i = 0; i < n; i++) syms[i] = byteSym[syms[i]];
    n = forceHeap || n > FLAT_LIMIT ? this.mergeHeap(n) : this.mergeFlat(n);
    const ids = new Array<number>(n);
    const limit = this.idLimit;
    for (let i = 0; i < n; i++) {
      const s = syms[i];
      if (s < limit) ids[i] = s;
      else if (this.unkId >= 0) ids[i] = this.unkId;
      else throw new UnknownTokenError(this.extraNames[s - limit]);
    }
    return ids;
  }

  /** Round-by-round merging on a flat array; slots[i] is the rule for (syms[i], syms[i+1]). */
  private mergeFlat(n: number): number {
    const syms = this.syms, slots = this.slots, rank = this.rank, merged = this.merged;
    for (let i = 0; i + 1 < n; i++) slots[i] = this.slotOf(syms[i], syms[i + 1]);
    while (n > 1) {
      let best = -1, bestRank = 0x7fffffff;
      for (let i = 0; i + 1 < n; i++) {
        const s = slots[i];
        if (s >= 0 && rank[s] < bestRank) { bestRank = rank[s]; best = s; }
      }
      if (best < 0) break;
      const into = merged[best];
      let w = 0;
      for (let i = 0; i < n; ) {
        if (i + 1 < n && slots[i] === best) { syms[w++] = into; i += 2; }
        else syms[w++] = syms[i++];
      }
      n = w;
      for (let i = 0; i + 1 < n; i++) slots[i] = this.slotOf(syms[i], syms[i + 1]);
    }
    return n;
  }

  /**
   * The same rounds with a linked list and a min-heap keyed by (rank, position), for long words. Each round
   * takes every entry of the lowest rank in position order; pairs it creates wait until the round is over,
   * exactly as the flat scan only sees them in the next round.
   */
  private mergeHeap(n: number): number {
    const syms = this.syms, rank = this.rank, merged = this.merged;
    const next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    const heap: number[] = [];
    const push = (key: number) => {
      let i = heap.length;
      heap.push(key);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p] <= key) break;
        heap[i] = heap[p];
        i = p;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap.pop()!;
      const len = heap.length;
      if (len > 0) {
        let i = 0;
        for (;;) {
          let c = 2 * i + 1;
          if (c >= len) break;
          if (c + 1 < len && heap[c + 1] < heap[c]) c++;
          if (heap[c] >= last) break;
          heap[i] = heap[c];
          i = c;
        }
        heap[i] = last;
      }
      return top;
    };
    for (let i = 0; i + 1 < n; i++) {
      const s = this.slotOf(syms[i], syms[i + 1]);
      if (s >= 0) push(rank[s] * POS_BITS + i);
    }
    const pending: number[] = [];
    while (heap.length > 0) {
      const roundRank = Math.floor(heap[0] / POS_BITS);
      while (heap.length > 0 && Math.floor(heap[0] / POS_BITS) === roundRank) {
        const left = pop() % POS_BITS;
        const right = next[left];
        if (syms[left] < 0 || right < 0) continue;
        const s = this.slotOf(syms[left], syms[right]);
        if (s < 0 || rank[s] !== roundRank) continue; // stale entry
        syms[left] = merged[s];
        syms[right] = -1;
        const after = next[right];
        next[left] = after;
        if (after >= 0) prev[after] = left;
        const before = prev[left];
        if (before >= 0) {
          const t = this.slotOf(syms[before], syms[left]);
          if (t >= 0) pending.push(rank[t] * POS_BITS + before);
        }
        if (after >= 0) {
          const t = this.slotOf(syms[left], syms[after]);
          if (t >= 0) pending.push(rank[t] * POS_BITS + left);
        }
      }
      for (const k of pending) push(k);
      pending.length = 0;
    }
    let w = 0;
    for (let i = 0; i >= 0; i = next[i]) syms[w++] = syms[i];
    return w;
  }

  /** Forget cached words. */
  clearCache(): void {
    this.cacheBits = 0;
    this.cacheSize = 0;
    this.cacheOff = new Int32Array(0);
    this.cacheLen = new Int32Array(0);
    this.cacheHash = new Int32Array(0);
    this.cacheSingle = new Int32Array(0);
    this.cacheMulti = [];
    this.pool = new Uint16Array(0);
    this.poolUsed = 0;
  }
}

// GPT-2's reversible byte <-> printable-character table (`bytes_to_unicode` in the reference implementation):
// printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order, so every token in
// vocab.json is a string of these 256 characters and any byte string can be spelled with them.

/** Character code (not string) for each byte value. */
export const BYTE_TO_CODE: Uint16Array = (() => {
  const table = new Uint16Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) table[b] = printable(b) ? b : 256 + shifted++;
  return table;
})();

/** The one-character string for each byte value. */
export const BYTE_TO_CHAR: readonly string[] = Array.from(BYTE_TO_CODE, (c) => String.fromCharCode(c));

/** Largest character code used by the table, plus one. */
export const BYTE_CODE_LIMIT = 324;

/** Byte value for a table character code, or -1 for a code the table does not use. */
export const CODE_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(BYTE_CODE_LIMIT).fill(-1);
  for (let b = 0; b < 256; b++) table[BYTE_TO_CODE[b]] = b;
  return table;
})();

/** Spell a byte string with the table characters (the form tokens take in vocab.json). */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

const utf8 = new TextEncoder();

/**
 * The bytes a vocabulary token stands for. A token with any character outside the table (an added token such as
 * "<|im_start|>" is plain ASCII and inside it) stands for its own UTF-8 bytes, whole, as in the Hugging Face
 * byte-level decoder.
 */
export function tokenStringToBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < BYTE_CODE_LIMIT ? CODE_TO_BYTE[c] : -1;
    if (b < 0) return utf8.encode(token);
    out[i] = b;
  }
  return out;
}

/**
 * tokenStringToBytes for a token held as UTF-16 units, units[start, end) (src/tokenizer/vocab.ts): writes its bytes to `out` from
 * `at` (when `out` is given) and returns how many there are, or -1 when a unit is outside the table (such a token
 * stands for its own UTF-8 bytes: use tokenStringToBytes on its string).
 */
export function tableUnitsToBytes(units: Uint16Array, start: number, end: number, out: Uint8Array | null, at: number): number {
  for (let i = start; i < end; i++) {
    const c = units[i];
    const b = c < BYTE_CODE_LIMIT ? CODE_TO_BYTE[c] : -1;
    if (b < 0) return -1;
    if (out) out[at + i - start] = b;
  }
  return end - start;
}

/**
 * Write the UTF-8 encoding of `s` into `out` starting at 0 and return the byte count. `out` must hold
 * 3 * s.length bytes. A lone surrogate becomes U+FFFD (EF BF BD), as TextEncoder does.
 */
export function utf8EncodeInto(s: string, out: Uint8Array | Int32Array): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) { out[n++] = c; continue; }
    if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); continue; }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18); out[n++] = 0x80 | ((c >> 12) & 63);
        out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
  }
  return n;
}

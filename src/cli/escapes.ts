// generate --escape (-e): llama.cpp's escape processing of the prompt and the stop text, so `--stop "\n"` typed in
// a shell means a newline. As llama.cpp's string_process_escapes, on the UTF-8 bytes: \n \r \t \' \" \\ and \xHH
// (one byte, two hex digits) are replaced; any other backslash is kept as typed. The bytes are then read as UTF-8
// strictly, so \x escapes that do not form whole characters are an error rather than a U+FFFD in the prompt.
import { OptionError } from '../errors.js';

const SIMPLE: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, "'": 0x27, '"': 0x22, '\\': 0x5c };

/** `text` with its escapes replaced; `flag` names the option in the error. */
export function processEscapes(text: string, flag: string): string {
  if (!text.includes('\\')) return text;
  const src = new TextEncoder().encode(text), out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c !== 0x5c || i + 1 >= src.length) { out.push(c); continue; }
    const e = String.fromCharCode(src[i + 1]);
    if (Object.hasOwn(SIMPLE, e)) { out.push(SIMPLE[e]); i++; continue; }
    const hex = e === 'x' ? String.fromCharCode(src[i + 2] ?? 0, src[i + 3] ?? 0) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) { out.push(parseInt(hex, 16)); i += 3; continue; }
    out.push(c); // not an escape: the backslash stays
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(out));
  } catch {
    throw new OptionError(`${flag} with --escape: its \\x escapes do not form UTF-8 characters (write a character as all its bytes, e.g. \\xc3\\xa9 for é)`);
  }
}

// GGUF string arrays read as one text (GGUFStrings, src/io/gguf.ts) and the tokenizer built from them without a
// string per item: the same values as decoding each item, the same UTF-8 errors, and the same tokenizer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer, GGUFError, GGUFFile, GGUFModelSource, GPT2LMHeadModel, save_gguf, TokenizerError } from '../src/index.js';
import { GGUF_TYPE, GGUFStrings, metadataValues } from '../src/io/gguf.js';
import { bytesSource, fileSource } from '../src/io/source.js';
import { tokenizerDataFromGGUF } from '../src/tokenizer/load.js';
import { GPT2Tokenizer } from '../src/tokenizer/tokenizer.js';
import { modelDir } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-gguf-strings-'));
const enc = new TextEncoder();

/** A GGUF v3 file with no tensors and the given metadata: string arrays (as strings, or raw UTF-8 bytes per item), u32s
 *  and u64s. */
function ggufBytes(meta: [string, { strs?: (string | Uint8Array)[]; str?: string; u32?: number; u64?: bigint }][]): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number) => { for (let i = 0; i < 4; i++) parts.push((v >>> (8 * i)) & 0xff); };
  const u64big = (v: bigint) => { for (let i = 0n; i < 8n; i++) parts.push(Number((v >> (8n * i)) & 0xffn)); };
  const u64 = (v: number) => { u32(v % 2 ** 32); u32(Math.floor(v / 2 ** 32)); };
  const str = (s: string | Uint8Array) => { const b = typeof s === 'string' ? enc.encode(s) : s; u64(b.length); for (const x of b) parts.push(x); };
  parts.push(...enc.encode('GGUF'));
  u32(3); u64(0); u64(meta.length);
  for (const [k, v] of meta) {
    str(k);
    if (v.strs) { u32(GGUF_TYPE.ARRAY); u32(GGUF_TYPE.STRING); u64(v.strs.length); v.strs.forEach(str); }
    else if (v.str !== undefined) { u32(GGUF_TYPE.STRING); str(v.str); }
    else if (v.u64 !== undefined) { u32(GGUF_TYPE.UINT64); u64big(v.u64); } else { u32(GGUF_TYPE.UINT32); u32(v.u32!); }
  }
  while (parts.length % 32) parts.push(0);
  return Uint8Array.from(parts);
}

/** Random strings of 0-12 characters drawn from ASCII, 2-, 3- and 4-byte UTF-8 (so some cross a window's end). */
function randomStrings(n: number, seed: number): string[] {
  let s = seed;
  const r = (k: number) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s % k; };
  const pool = ['a', 'Z', ' ', 'Ġ', 'é', 'ĉ', '\u2581', '中', '\ufeff', '😀', '\u{10348}', '\n', '\u0000'];
  return Array.from({ length: n }, () => Array.from({ length: r(13) }, () => pool[r(pool.length)]).join(''));
}

test('string arrays: items, value and metadataValues agree with each item decoded on its own, across read windows, from memory and from a file', async () => {
  const list = randomStrings(150_000, 1); // ~2 MB: the 1 MiB read window moves inside the array
  const small = ['', 'Ġthe', '😀x', '\ufeffbom'];
  const bytes = ggufBytes([['a.count', { u32: 7 }], ['tokenizer.ggml.tokens', { strs: list }], ['x.small', { strs: small }], ['x.empty', { strs: [] }]]);
  const path = join(tmp, 'strings.gguf');
  writeFileSync(path, bytes);
  for (const src of [bytesSource('mem.gguf', bytes), await fileSource(path)]) {
    const g = await GGUFFile.open(src);
    await src.close?.();
    const e = g.metadata.get('tokenizer.ggml.tokens')!;
    assert.ok(e.strings instanceof GGUFStrings);
    assert.is(e.strings!.length, list.length);
    for (let i = 0; i < list.length; i += 997) assert.is(e.strings!.at(i), list[i], `item ${i}`);
    assert.equal(e.strings!.toArray(), list);
    assert.equal(e.value, list); // made on first read
    assert.equal(g.get('x.small'), small);
    assert.equal(g.get('x.empty'), []);
    assert.is(g.get('a.count'), 7);
    const mv = metadataValues(g);
    assert.ok(mv.get('x.small') instanceof GGUFStrings);
    assert.equal((mv.get('x.small') as GGUFStrings).toArray(), small);
  }
});

test('string arrays: an item that is not valid UTF-8 on its own is a GGUFError naming it, even when the items joined would be valid', async () => {
  const cases: [string, (string | Uint8Array)[], number][] = [
    ['split character', ['ok', Uint8Array.of(0x61, 0xc3), Uint8Array.of(0xa9, 0x62)], 1], // "é" cut between items 1 and 2
    ['stray byte', ['ok', 'fine', Uint8Array.of(0x61, 0xff)], 2],
    ['starts with a continuation byte', ['ok', Uint8Array.of(0x80)], 1],
    ['surrogate', [Uint8Array.of(0xed, 0xa0, 0x80)], 0],
    ['overlong', ['a', 'b', 'c', Uint8Array.of(0xc0, 0xaf)], 3],
  ];
  for (const [what, strs, bad] of cases) {
    const bytes = ggufBytes([['tokenizer.ggml.merges', { strs }]]);
    try {
      await GGUFFile.open(bytesSource('bad.gguf', bytes));
      assert.unreachable(what);
    } catch (e) {
      assert.instance(e, GGUFError, what);
      assert.match((e as Error).message, new RegExp(`tokenizer\\.ggml\\.merges"\\[${bad}\\] at offset \\d+ is not valid UTF-8`), what);
    }
  }
});

test('tokenizer from GGUF string arrays equals the one from the same metadata as plain string arrays (trained fixture, real GPT-2 vocabulary)', async () => {
  const path = join(tmp, 'trained.gguf');
  await save_gguf(modelDir('gpt2-trained'), path, { dtype: 'q8_0' });
  const src = await GGUFModelSource.open(() => fileSource(path));
  const compact = src.ggufMetadata();
  assert.ok(compact.get('tokenizer.ggml.tokens') instanceof GGUFStrings);
  const plain = new Map([...compact].map(([k, v]) => [k, v instanceof GGUFStrings ? v.toArray() : v]));
  const a = tokenizerDataFromGGUF(compact, path), b = tokenizerDataFromGGUF(plain, path);
  assert.is(a.vocab.size, 50257);
  assert.equal([...a.vocab], [...b.vocab]);
  assert.equal([...a.merges], [...b.merges]);
  assert.equal(a.added_tokens, b.added_tokens);
  assert.is(a.eos_token, b.eos_token);
  const fromFiles = await AutoTokenizer.from_pretrained(modelDir('gpt2-trained'));
  const ta = new GPT2Tokenizer(a), tb = new GPT2Tokenizer(b);
  for (const text of ['Hello world, this is GPT-2.', ' naïve café 😀 — 中文<|endoftext|>', 'x'.repeat(50) + '\n\n  tabs\tand   spaces']) {
    assert.equal(ta.encode(text), tb.encode(text), text);
    assert.equal(ta.encode(text), fromFiles.encode(text), text);
  }
});

test('tokenizer from GGUF: a duplicate token and a bad merge are errors naming them', () => {
  const meta = (tokens: string[], merges: string[]) => new Map<string, unknown>([
    ['general.architecture', 'gpt2'], ['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.tokens', new GGUFStrings(tokens.join(''), Int32Array.from([0, ...tokens.map((_, i) => tokens.slice(0, i + 1).join('').length)]))],
    ['tokenizer.ggml.merges', merges],
  ]);
  assert.throws(() => tokenizerDataFromGGUF(meta(['a', 'b', 'ab', 'b'], ['a b']), 'f.gguf'), /token "b" appears at ids 1 and 3/);
  assert.throws(() => tokenizerDataFromGGUF(meta(['a', 'b', 'ab'], ['a b', 'ab']), 'f.gguf'), /tokenizer\.ggml\.merges\[1\] "ab" has 1 field/);
  assert.throws(() => tokenizerDataFromGGUF(meta(['a', 'b', 'ab'], ['a  b']), 'f.gguf'), /tokenizer\.ggml\.merges\[0\]/);
  assert.is(tokenizerDataFromGGUF(meta(['a', 'b', 'ab'], ['a b']), 'f.gguf').merges.length, 1);
});

test('metadata that should be a string holding a u64/i64 past 2^53 (a bigint) is a typed error naming the key', async () => {
  // JSON.stringify of a bigint is a TypeError: the messages showing these values used it
  const tokens = ['a', 'b', 'ab'];
  const meta = (entries: [string, unknown][]) => new Map<string, unknown>([
    ['general.architecture', 'gpt2'], ['tokenizer.ggml.tokens', new GGUFStrings(tokens.join(''), Int32Array.from([0, 1, 2, 4]))], ['tokenizer.ggml.merges', ['a b']], ...entries,
  ]);
  assert.throws(() => tokenizerDataFromGGUF(meta([['tokenizer.ggml.model', 2n ** 63n]]), 'f.gguf'),
    (e: Error) => e instanceof TokenizerError && /f\.gguf: metadata tokenizer\.ggml\.model is 9223372036854775808; only GPT-2/.test(e.message));
  assert.throws(() => tokenizerDataFromGGUF(meta([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.pre', -(2n ** 62n)]]), 'f.gguf'),
    (e: Error) => e instanceof TokenizerError && /f\.gguf: metadata tokenizer\.ggml\.pre is -4611686018427387904; only GPT-2's pre-tokenizer/.test(e.message));
  assert.throws(() => tokenizerDataFromGGUF(meta([['tokenizer.ggml.model', [1, 2n ** 63n]]]), 'f.gguf'),
    (e: Error) => e instanceof TokenizerError && /tokenizer\.ggml\.model is \[1,"9223372036854775808"\]/.test(e.message));
  // the same from a file, through the loaders: both refuse the architecture first, naming the bigint
  const file = ggufBytes([['general.architecture', { u64: 2n ** 63n }], ['tokenizer.ggml.model', { u64: 2n ** 63n }]]);
  const source = await GGUFModelSource.open(async () => bytesSource('big.gguf', file));
  await GPT2LMHeadModel.from_pretrained(source, { threads: 1 }).then(() => assert.unreachable('loaded'),
    (e) => assert.ok(e instanceof GGUFError && /big\.gguf: general\.architecture is 9223372036854775808 \(u64\); gpt2-wasm runs only "gpt2" models/.test(e.message), String(e)));
  await AutoTokenizer.from_pretrained(source).then(() => assert.unreachable('loaded'),
    (e) => assert.ok(e instanceof GGUFError && /big\.gguf: tokenizer: general\.architecture is 9223372036854775808; gpt2-wasm runs only "gpt2" models/.test(e.message), String(e)));
  // and of a gpt2 file, the tokenizer key holding a bigint
  const gpt2 = ggufBytes([['general.architecture', { str: 'gpt2' }], ['tokenizer.ggml.model', { u64: 2n ** 63n }]]);
  await AutoTokenizer.from_pretrained(await GGUFModelSource.open(async () => bytesSource('big.gguf', gpt2))).then(() => assert.unreachable('loaded'),
    (e) => assert.ok(e instanceof TokenizerError && /big\.gguf: tokenizer: metadata tokenizer\.ggml\.model is 9223372036854775808/.test(e.message), String(e)));
});

test('tokenizer from GGUF: a file of another architecture is refused for it first, as the model loader does, before any tokenizer key', async () => {
  // a llama file's tokenizer: SentencePiece ("llama"), which alone would be refused as an unsupported tokenizer model
  const llama = ggufBytes([['general.architecture', { str: 'llama' }], ['tokenizer.ggml.model', { str: 'llama' }], ['tokenizer.ggml.tokens', { strs: ['<unk>', '<s>', '</s>'] }]]);
  const source = await GGUFModelSource.open(async () => bytesSource('big.gguf', llama));
  const refused = (e: unknown) => {
    assert.instance(e, GGUFError);
    assert.match((e as Error).message, /^big\.gguf: tokenizer: general\.architecture is "llama"; gpt2-wasm runs only "gpt2" models$/);
  };
  await AutoTokenizer.from_pretrained(source).then(() => assert.unreachable('loaded'), refused);
  // no tokenizer keys at all: still the architecture, not "the file has no tokenizer"
  const bare = ggufBytes([['general.architecture', { str: 'llama' }]]);
  await AutoTokenizer.from_pretrained(await GGUFModelSource.open(async () => bytesSource('big.gguf', bare))).then(() => assert.unreachable('loaded'), refused);
  // the model loader says the same of the same file
  await GPT2LMHeadModel.from_pretrained(source, { threads: 1 }).then(() => assert.unreachable('loaded'),
    (e) => assert.ok(e instanceof GGUFError && /big\.gguf: general\.architecture is "llama" \(string\); gpt2-wasm runs only "gpt2" models/.test(e.message), String(e)));
  // and metadata without the key is refused as the model loader refuses it
  const noArch = new Map<string, unknown>([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.tokens', ['a', 'b', 'ab']], ['tokenizer.ggml.merges', ['a b']]]);
  assert.throws(() => tokenizerDataFromGGUF(noArch, 'f.gguf'), (e: Error) => e instanceof GGUFError && /^f\.gguf: missing metadata key general\.architecture$/.test(e.message));
  assert.is(tokenizerDataFromGGUF(new Map([...noArch, ['general.architecture', 'gpt2']]), 'f.gguf').vocab.size, 3);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();

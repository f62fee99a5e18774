// src/tokenizer/vocab.ts: vocab.json read straight into typed arrays and merges.txt into bounds must give exactly
// what JSON.parse + Object.entries (+ a Map) and a line split give: the same entries in the same order, the same
// ids, the same errors (the reader falls back to JSON.parse for anything unusual).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelDir } from './helpers/fixtures.js';
import { parseJsonFile, parseMergesText, parseVocab, parseVocabText } from '../src/tokenizer/load.js';
import { MergeRules, Vocab, readVocabJson } from '../src/tokenizer/vocab.js';
import { TokenizerError } from '../src/errors.js';

const DIR = modelDir('gpt2-tiny');
const VOCAB_TEXT = readFileSync(join(DIR, 'vocab.json'), 'utf8');
const MERGES_TEXT = readFileSync(join(DIR, 'merges.txt'), 'utf8');

/** What the loader gave before vocab.ts: Object.entries of JSON.parse. */
const reference = (text: string) => Object.entries(JSON.parse(text)) as [string, number][];

function sameAsReference(text: string, label: string, direct = true) {
  const want = reference(text);
  if (direct) assert.ok(readVocabJson(text, 0xffffff), `${label}: read without JSON.parse`);
  const v = parseVocabText(text, 'vocab.json');
  assert.equal([...v], want, `${label}: entries in Object.entries order`);
  assert.is(v.size, new Map(want).size, `${label}: size`);
  const byId = new Map<number, string>();
  for (const [k, id] of want) {
    assert.is(v.get(k), id, `${label}: get(${JSON.stringify(k)})`);
    assert.ok(v.has(k));
    assert.is(v.idOfRange(`<${k}>`, 1, k.length + 1), id, `${label}: idOfRange(${JSON.stringify(k)})`);
    if (!byId.has(id)) byId.set(id, k);
  }
  for (const [id, k] of byId) assert.is(v.token(id), k, `${label}: token(${id}) is the first token listed with it`);
  assert.is(v.idLimit, Math.max(...want.map(([, id]) => id)) + 1);
}

test('vocab.json: the GPT-2 vocabulary reads into the same entries, order and ids as JSON.parse', () => {
  sameAsReference(VOCAB_TEXT, 'gpt2 vocab.json');
  const v = parseVocabText(VOCAB_TEXT, 'vocab.json');
  assert.is(v.get('Ġthe'), 262);
  assert.is(v.get('not a token'), undefined);
  assert.is(v.token(50256), '<|endoftext|>');
  assert.is(v.idOfPair('Ġ the', 0, 1, 2, 5), 262, 'a merge result looked up from its two halves');
  assert.is(v.idOfPair('Ġ xqzq', 0, 1, 2, 6), -1);
});

test('vocab.json: escapes, whitespace, duplicates, array-index keys and odd ids, read directly or through JSON.parse', () => {
  const direct = [
    '{"a": 0, "b":1,"c"  :  2}',
    ' \n{\t"\\"q\\"": 3, "\\\\": 4, "\\/": 5, "\\b\\f\\n\\r\\t": 6, "\\u0120x": 7, "\\ud83d\\ude00": 8, "\\uD800": 9, "\\u00e9\\u00E9": 10 }\r\n',
    '{"x": 1, "y": 2, "x": 3}', // a key given twice keeps its first place and its last id
    '{"b": 0, "10": 1, "2": 2, "0": 3, "01": 4, "4294967294": 5, "4294967295": 6, "": 7, "-1": 8, "1.5": 9, "10": 10}',
    '{"__proto__": 1, "constructor": 2, "toString": 3}',
    '{"same": 5, "other": 5}', // two tokens, one id
    '{"long": 16777215}',
    '{}',
  ];
  for (const t of direct) {
    if (t === '{}') continue;
    sameAsReference(t, t);
  }
  // anything else is read by JSON.parse: the same vocabulary, or parseVocab's error
  sameAsReference('{"a": 1.0, "b": 2e0, "c": 30E-1}', 'non-integer notation', false);
  assert.is(readVocabJson('{"a": 1.0}', 0xffffff), null);
  for (const bad of ['{"a": -3}', '{"a": "1"}', '{"a": 1.5}', '{"a": 16777216}', '{}', '[]', '{"a": 0,}', '{"a": 0', '{"a\u0001": 0}', '{"\\x": 0}', '{"a": 01}', '{"a": 0} x']) {
    let want = '', got = '';
    try { parseVocab(parseJsonFile(bad, 'vocab.json'), 'vocab.json'); } catch (e) { assert.instance(e, TokenizerError); want = (e as Error).message; }
    try { parseVocabText(bad, 'vocab.json'); } catch (e) { assert.instance(e, TokenizerError); got = (e as Error).message; }
    assert.ok(want, `${bad} is refused by JSON.parse + parseVocab`);
    assert.is(got, want, `${bad}: the same error`);
  }
});

test('vocab.json: random vocabularies (unicode, escapes, spacing) read as JSON.parse reads them', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const alphabet = ['a', 'Z', '0', '7', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u007f', 'é', 'Ġ', 'Ċ', '中', '\ud83d\ude00', '\ud800', '\udfff'];
  for (let round = 0; round < 40; round++) {
    const obj: Record<string, number> = {};
    const n = 1 + rnd(300);
    for (let i = 0; i < n; i++) {
      let k = '';
      const len = rnd(6);
      for (let j = 0; j < len; j++) k += rnd(4) === 0 ? String(rnd(100)) : alphabet[rnd(alphabet.length)];
      obj[k] = rnd(5) === 0 ? rnd(20) : rnd(70000);
    }
    const text = JSON.stringify(obj, null, [0, 1, 2, '\t'][round % 4] as number | string);
    if (reference(text).length === 0) continue;
    sameAsReference(text, `random vocabulary ${round}`);
  }
});

test('merges.txt: read into bounds, the same rules and errors as a line split', () => {
  const lines = MERGES_TEXT.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l && !l.startsWith('#version'));
  const m = parseMergesText(MERGES_TEXT, 'merges.txt');
  assert.is(m.length, lines.length);
  assert.is(m.length, 50000);
  for (const r of [0, 1, 999, 49999]) assert.equal(m.pair(r), lines[r].split(' ') as [string, string]);
  assert.equal([...m].map(([a, b]) => `${a} ${b}`), lines);
  assert.equal(m.map(([a, b], r) => `${r}:${a}|${b}`).slice(0, 2), [`0:${lines[0].replace(' ', '|')}`, `1:${lines[1].replace(' ', '|')}`]);
  const crlf = parseMergesText('#version: 0.2\r\nĠ t\r\n\r\nh e\r\nx yz', 'merges.txt');
  assert.equal([...crlf], [['Ġ', 't'], ['h', 'e'], ['x', 'yz']]);
  assert.equal([...MergeRules.fromPairs([['a', 'b'], ['ab', 'c']])], [['a', 'b'], ['ab', 'c']]);
  for (const [text, re] of [['a b\nab', /line 2 "ab" has 1 field/], ['a b\n a', /line 2/], ['a b c', /line 1 .*3 fields/], ['a \n', /line 1/], ['x y\n\nab  c', /line 3/]] as const) {
    try { parseMergesText(text, 'merges.txt'); assert.unreachable(`${JSON.stringify(text)} accepted`); } catch (e) {
      assert.instance(e, TokenizerError);
      assert.match((e as Error).message, re);
    }
  }
});

test('Vocab.from: a Map or entries, a repeated token keeps its last id', () => {
  const v = Vocab.from([['a', 0], ['b', 1], ['a', 2]]);
  assert.equal([...v], [['a', 2], ['b', 1]]);
  assert.equal([...v.keys()], ['a', 'b']);
  assert.equal([...v.values()], [2, 1]);
  assert.ok(v.hasId(1) && !v.hasId(0) && !v.hasId(3));
  assert.is(v.token(0), undefined);
  const seen: string[] = [];
  v.forEach((id, k) => seen.push(`${k}=${id}`));
  assert.equal(seen, ['a=2', 'b=1']);
});

test.run();

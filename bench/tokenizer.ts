// Tokenizer throughput: MB/s encoding (and decoding) a deterministic English-like corpus with our GPT-2 BPE and
// with js-tiktoken's gpt2 encoding, and how many ids differ between the two.
//   node --import tsx bench/tokenizer.ts [--quick] [--mb N] [--json]
import { pathToFileURL } from 'node:url';
import { AutoTokenizer } from '../src/tokenizer/index.js';

export interface TokenizerBenchOptions {
  /** Smaller corpus and fewer repeats. */
  quick?: boolean;
  /** Corpus size in MB (UTF-8); default 4, quick 0.5. */
  mb?: number;
  /** Directory with vocab.json and merges.txt; default the gpt2-tiny fixture. */
  dir?: string;
  /** Print a table (default true). */
  print?: boolean;
}

export interface TokenizerBenchRow {
  impl: string;
  /** First pass over the corpus: our BPE cache starts empty. */
  encode_cold_mb_s: number;
  /** Best of the later passes. */
  encode_warm_mb_s: number;
  decode_mb_s: number;
  load_ms: number;
}

export interface TokenizerBenchResult {
  corpus_bytes: number;
  tokens: number;
  rows: TokenizerBenchRow[];
  /** Positions where the id sequences differ (plus the length difference); 0 means identical. */
  mismatches: number;
  first_mismatch: number | null;
}

const WORDS = (
  'the of and to a in is it you that he was for on are with as I his they be at one have this from or had by ' +
  'word but what some we can out other were all there when up use your how said an each she which do their ' +
  'time if will way about many then them write would like so these her long make thing see him two has look ' +
  'more day could go come did number sound no most people my over know water than call first who may down ' +
  'side been now find any new work part take get place made live where after back little only round man year ' +
  'came show every good me give our under name very through just form sentence great think say help low line ' +
  'differ turn cause much mean before move right boy old too same tell does set three want air well also play ' +
  'small end put home read hand port large spell add even land here must big high such follow act why ask men ' +
  'change went light kind off need house picture try us again animal point mother world near build self earth ' +
  'father head stand own page should country found answer school grow study still learn plant cover food sun ' +
  'four between state keep eye never last let thought city tree cross farm hard start might story saw far sea ' +
  'draw left late run while press close night real life few north open seem together next white children begin ' +
  'got walk example ease paper group always music those both mark often letter until mile river car feet care ' +
  'second book carry took science eat room friend began idea fish mountain stop once base hear horse cut sure ' +
  'watch color face wood main enough plain girl usual young ready above ever red list though feel talk bird ' +
  "soon body dog family direct pose leave song measure door product black short numeral class wind question " +
  'happen complete ship area half rock order fire south problem piece told knew pass since top whole king space ' +
  'heard best hour better true during hundred five remember step early hold west ground interest reach fast ' +
  'verb sing listen six table travel less morning ten simple several vowel toward war lay against pattern slow ' +
  'center love person money serve appear road map rain rule govern pull cold notice voice unit power town fine ' +
  'certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done ' +
  'beauty drive stood contain front teach week final gave green oh quick develop ocean warm free minute strong ' +
  'special mind behind clear tail produce fact street inch multiply nothing course stay wheel full force blue ' +
  'object decide surface deep moon island foot system busy test record boat common gold possible plane stead ' +
  'dry wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant ' +
  'fill east paint language among WebAssembly GPT tokenizer Hugging Face JavaScript TypeScript Mr Mrs London Paris'
).split(' ');
const CONTRACTIONS = ["don't", "it's", "I'm", "you're", "we've", "they'll", "he'd", "can't", "won't", "she's"];

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** About `bytes` bytes of English-like prose: sentences, paragraphs, numbers, quotes, contractions. */
export function englishCorpus(bytes: number, seed = 1234): string {
  const rnd = mulberry32(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rnd() * a.length)];
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const sentenceWords = 4 + Math.floor(rnd() * 18);
    let s = '';
    for (let w = 0; w < sentenceWords; w++) {
      const r = rnd();
      let word = r < 0.04 ? pick(CONTRACTIONS) : r < 0.07 ? String(Math.floor(rnd() * (rnd() < 0.5 ? 100 : 100000))) : pick(WORDS);
      if (w === 0) word = word[0].toUpperCase() + word.slice(1);
      if (w > 0) s += ' ';
      if (rnd() < 0.02) word = `"${word}"`;
      else if (rnd() < 0.01) word = `(${word})`;
      s += word;
      if (w < sentenceWords - 1 && rnd() < 0.08) s += pick([',', ',', ';', ':', ' -']);
    }
    s += pick(['.', '.', '.', '.', '?', '!', '...']);
    s += rnd() < 0.12 ? '\n\n' : ' ';
    parts.push(s);
    size += s.length;
  }
  return parts.join('');
}

function mismatchCount(a: number[], b: number[]): { count: number; first: number | null } {
  let count = Math.abs(a.length - b.length), first: number | null = a.length !== b.length ? Math.min(a.length, b.length) : null;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      count++;
      if (first === null || i < first) first = i;
    }
  }
  return { count, first };
}

function time<T>(f: () => T): { ms: number; value: T } {
  const t = performance.now();
  const value = f();
  return { ms: performance.now() - t, value };
}

export async function runTokenizerBench(opts: TokenizerBenchOptions = {}): Promise<TokenizerBenchResult> {
  const quick = opts.quick ?? false;
  const mb = opts.mb ?? (quick ? 0.5 : 4);
  const repeats = quick ? 2 : 3;
  const print = opts.print ?? true;
  const text = englishCorpus(Math.round(mb * 1e6));
  const bytes = new TextEncoder().encode(text).length;
  const mbs = (ms: number) => bytes / 1e6 / (ms / 1000);

  const ours = await (async () => {
    const t = performance.now();
    const dir = opts.dir ?? (await import('../test/helpers/fixtures.js')).modelDir('gpt2-tiny');
    const tok = await AutoTokenizer.from_pretrained(dir);
    return { tok, load: performance.now() - t };
  })();
  const cold = time(() => ours.tok.encode(text));
  let warm = Infinity;
  for (let r = 0; r < repeats; r++) warm = Math.min(warm, time(() => ours.tok.encode(text)).ms);
  let dec = Infinity;
  for (let r = 0; r < repeats; r++) dec = Math.min(dec, time(() => ours.tok.decode(cold.value)).ms);
  if (ours.tok.decode(cold.value) !== text) throw new Error('bench: our decode(encode(corpus)) differs from the corpus');
  const rows: TokenizerBenchRow[] = [
    { impl: 'gpt2-wasm', encode_cold_mb_s: mbs(cold.ms), encode_warm_mb_s: mbs(warm), decode_mb_s: mbs(dec), load_ms: ours.load },
  ];

  let mismatches = -1, first: number | null = null;
  try {
    const { getEncoding } = await import('js-tiktoken');
    const tl = time(() => getEncoding('gpt2'));
    const enc = tl.value;
    const tcold = time(() => enc.encode(text));
    let twarm = Infinity;
    for (let r = 0; r < repeats; r++) twarm = Math.min(twarm, time(() => enc.encode(text)).ms);
    let tdec = Infinity;
    for (let r = 0; r < repeats; r++) tdec = Math.min(tdec, time(() => enc.decode(tcold.value)).ms);
    rows.push({ impl: 'js-tiktoken', encode_cold_mb_s: mbs(tcold.ms), encode_warm_mb_s: mbs(twarm), decode_mb_s: mbs(tdec), load_ms: tl.ms });
    const m = mismatchCount(cold.value, tcold.value);
    mismatches = m.count;
    first = m.first;
  } catch (e) {
    if (print) console.log(`js-tiktoken unavailable: ${e instanceof Error ? e.message : e}`);
  }

  const result: TokenizerBenchResult = { corpus_bytes: bytes, tokens: cold.value.length, rows, mismatches, first_mismatch: first };
  if (print) {
    console.log(`tokenizer bench: ${(bytes / 1e6).toFixed(2)} MB English-like text, ${cold.value.length} tokens`);
    console.log('impl          encode cold MB/s  encode warm MB/s  decode MB/s  load ms');
    for (const r of rows) {
      console.log(
        `${r.impl.padEnd(14)}${r.encode_cold_mb_s.toFixed(2).padStart(16)}${r.encode_warm_mb_s.toFixed(2).padStart(18)}` +
          `${r.decode_mb_s.toFixed(1).padStart(13)}${r.load_ms.toFixed(0).padStart(9)}`,
      );
    }
    console.log(mismatches < 0 ? 'ids vs js-tiktoken: not compared' : `ids vs js-tiktoken: ${mismatches} mismatches${first === null ? '' : ` (first at ${first})`}`);
  }
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const mbAt = args.indexOf('--mb');
  const res = await runTokenizerBench({ quick: args.includes('--quick'), mb: mbAt >= 0 ? Number(args[mbAt + 1]) : undefined, print: !args.includes('--json') });
  if (args.includes('--json')) console.log(JSON.stringify(res, null, 2));
  if (res.mismatches > 0) process.exitCode = 1;
}

// Whole-model peer: native llama.cpp, through its own llama-bench, on GGUF conversions of the bench's random
// GPT-2-124M-shaped checkpoint (written by our save_gguf: F32, F16, Q8_0, and Q4_0 with token_embd kept at Q8_0,
// the same mix as our q4 plan). Nothing of llama.cpp is part of this repository: point GPT2WASM_LLAMA_CPP at a
// llama.cpp build directory (the one holding bin/llama-bench) to measure it; unset, the bench says so.
//
// Protocol, as far as llama-bench allows: the bench protocol's number of fresh processes, each running
// llama-bench with `-r <protocol runs>` (llama-bench repeats every test that many times in one process, after one
// warm-up run of the same test), and each figure keeps its best sample over all processes, as ours does.
// pp128 = a 128-token prompt into an empty context (our prefill 128); tg = `decodeSteps` tokens generated one at a
// time from an empty context (this llama-bench has no depth option: our decode starts at context 128); -pg 128,N
// (prompt then generation in one test) gives the generation rate after a 128-token prompt by difference:
// N / (t(pg) - t(pp128)). The K/V cache is llama-bench's default F16.
// The files carry `output.weight`, a copy of the token embedding (save_gguf writes a tied head so, as llama.cpp's
// converter does; the loader of the llama.cpp this was measured with, c392e50, requires it): llama.cpp reads the
// embedding for the row gather and `output` for the LM head, the same bytes per token as our tied head.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { DType } from '../model.js';
import { protocol, round } from '../util/timing.js';

export const LLAMA_CPP_ENV = 'GPT2WASM_LLAMA_CPP';
export const LLAMA_CPP_UNSET = `llama.cpp: not measured (set ${LLAMA_CPP_ENV})`;

/** The GGUF type written for each of our dtypes (q4: Q4_0 matrices, token embedding Q8_0, as our q4 default plan). */
export const GGUF_FOR_DTYPE: Record<DType, { out: 'f32' | 'f16' | 'q8_0' | 'q4_0'; label: string }> = {
  fp32: { out: 'f32', label: 'F32' },
  fp16: { out: 'f16', label: 'F16' },
  q8: { out: 'q8_0', label: 'Q8_0' },
  q4: { out: 'q4_0', label: 'Q4_0 (token_embd Q8_0)' },
};

export interface LlamaCppRow {
  /** Our dtype this GGUF corresponds to, and the GGUF's types. */
  dtype: DType; gguf: string; threads: number;
  /** Best sample over all processes (tokens/s). */
  pp128_tok_s: number;
  tg_tok_s: number;
  /** Generation rate after a 128-token prompt, from -pg 128,N minus pp128 (best samples of each). */
  tg_after_128_tok_s: number | null;
  /** Tokens generated per tg sample. */
  n_gen: number;
}

export interface LlamaCppResult {
  measured: boolean;
  /** Why not measured, or what was measured. */
  note: string;
  /** llama-bench's build commit and number, CPU and backend, from its JSON. */
  build?: string;
  rows: LlamaCppRow[];
  errors: string[];
  method: string;
}

/** bin/llama-bench under GPT2WASM_LLAMA_CPP, or null when the variable is unset; throws when it is set wrong. */
export function llamaBenchPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env[LLAMA_CPP_ENV];
  if (!dir) return null;
  const bin = join(dir, 'bin', 'llama-bench');
  if (!existsSync(bin)) throw new Error(`${LLAMA_CPP_ENV}=${dir}: no bin/llama-bench there (point it at a llama.cpp build directory)`);
  return bin;
}

/** One test of llama-bench's JSON output (the fields used here). */
interface LlamaBenchTest { model_filename: string; n_prompt: number; n_gen: number; n_threads: number; samples_ts: number[]; samples_ns: number[]; build_commit?: string; build_number?: number; cpu_info?: string; backends?: string }

function runLlamaBench(bin: string, args: string[], timeoutMs: number): Promise<LlamaBenchTest[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) { reject(new Error(`llama-bench ${signal ? `killed by ${signal}` : `exit code ${code}`}: ${err.trim().split('\n').slice(-4).join(' | ').slice(0, 600)}`)); return; }
      try { resolve(JSON.parse(out) as LlamaBenchTest[]); } catch (e) { reject(new Error(`llama-bench printed no JSON: ${out.slice(0, 300)}`)); }
    });
  });
}

/** Best (shortest) sample of a test, in seconds. */
const bestSeconds = (t: LlamaBenchTest) => Math.min(...t.samples_ns) / 1e9;

/** Folds the tests of one or more llama-bench runs into rows: for each (file, threads), the best sample of
 *  pp128, tg and pg (128 + tg). `files` maps a GGUF file name to our dtype. */
export function llamaCppRows(tests: LlamaBenchTest[], files: Map<string, DType>, nGen: number): LlamaCppRow[] {
  const best = new Map<string, number>(); // key -> best seconds
  const key = (file: string, t: number, kind: string) => `${file}|${t}|${kind}`;
  for (const t of tests) {
    const kind = t.n_prompt > 0 && t.n_gen > 0 ? 'pg' : t.n_prompt > 0 ? 'pp' : 'tg';
    const k = key(basename(t.model_filename), t.n_threads, kind);
    best.set(k, Math.min(best.get(k) ?? Infinity, bestSeconds(t)));
  }
  const rows: LlamaCppRow[] = [];
  const threads = [...new Set(tests.map((t) => t.n_threads))].sort((a, b) => a - b);
  for (const [file, dtype] of files) {
    for (const th of threads) {
      const pp = best.get(key(file, th, 'pp')), tg = best.get(key(file, th, 'tg')), pg = best.get(key(file, th, 'pg'));
      if (pp == null || tg == null) continue;
      rows.push({
        dtype, gguf: GGUF_FOR_DTYPE[dtype].label, threads: th, n_gen: nGen,
        pp128_tok_s: round(128 / pp, 1), tg_tok_s: round(nGen / tg, 1),
        // the difference of two best-of timings: null when noise makes it meaningless
        tg_after_128_tok_s: pg != null && pg > pp ? round(nGen / (pg - pp), 1) : null,
      });
    }
  }
  return rows;
}

/**
 * Writes the GGUF conversions of the checkpoint in `dir` (via `convert`, our save_gguf on the checkpoint beside a
 * real GPT-2 tokenizer) and runs llama-bench on them at each thread count. Returns { measured: false } with the
 * reason when GPT2WASM_LLAMA_CPP is unset.
 */
export async function runLlamaCpp(dir: string, opts: {
  quick?: boolean; threads?: number[]; dtypes?: DType[]; print?: boolean;
  convert: (dir: string, file: string, out: 'f32' | 'f16' | 'q8_0' | 'q4_0') => Promise<void>;
}): Promise<LlamaCppResult> {
  const proto = protocol(!!opts.quick);
  const method = `${proto.processes} fresh llama-bench process(es), each -r ${proto.runs} (one warm-up run per test, in the same process), best sample kept; ` +
    `pp128 = -p 128, tg = -n ${proto.decodeSteps} from an empty context, tg after 128 = (-pg 128,${proto.decodeSteps}) - pp128; F16 K/V cache (llama-bench default), mmap on`;
  const res: LlamaCppResult = { measured: false, note: LLAMA_CPP_UNSET, rows: [], errors: [], method };
  let bin: string | null;
  try { bin = llamaBenchPath(); } catch (e) { res.note = `llama.cpp: not measured: ${(e as Error).message}`; return res; }
  if (!bin) return res;
  const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-llamacpp-'));
  try {
    const files = new Map<string, DType>();
    for (const dtype of opts.dtypes ?? (['fp32', 'fp16', 'q8', 'q4'] as DType[])) {
      const file = join(tmp, `model.${GGUF_FOR_DTYPE[dtype].out}.gguf`);
      try { await opts.convert(dir, file, GGUF_FOR_DTYPE[dtype].out); files.set(basename(file), dtype); } catch (e) { res.errors.push(`convert ${dtype}: ${(e as Error).message}`); }
    }
    if (!files.size) { res.note = 'llama.cpp: not measured (no GGUF conversion)'; return res; }
    const threads = opts.threads ?? [1, 2];
    const args = [...[...files.keys()].flatMap((f) => ['-m', join(tmp, f)]), '-p', '128', '-n', String(proto.decodeSteps), '-pg', `128,${proto.decodeSteps}`,
      '-t', threads.join(','), '-r', String(proto.runs), '-o', 'json'];
    const tests: LlamaBenchTest[] = [];
    for (let p = 0; p < proto.processes; p++) {
      try { tests.push(...(await runLlamaBench(bin, args, 900_000))); } catch (e) { res.errors.push((e as Error).message); }
    }
    if (!tests.length) { res.note = 'llama.cpp: not measured (llama-bench failed)'; return res; }
    const t0 = tests[0];
    res.build = `llama.cpp build ${t0.build_number ?? '?'} (${t0.build_commit ?? '?'}), ${t0.backends ?? 'CPU'}, ${t0.cpu_info ?? ''}`.trim();
    res.rows = llamaCppRows(tests, files, proto.decodeSteps);
    res.measured = res.rows.length > 0;
    res.note = res.measured ? `llama.cpp: ${res.build}` : 'llama.cpp: not measured (no complete row)';
    if (opts.print ?? true) {
      for (const r of res.rows) console.log(`  llama.cpp ${r.gguf} ${r.threads}t: pp128 ${r.pp128_tok_s} tok/s, tg${r.n_gen} ${r.tg_tok_s}, tg after 128 ${r.tg_after_128_tok_s ?? '-'}`);
    }
    return res;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}



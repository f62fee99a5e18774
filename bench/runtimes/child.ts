// One runtime's measurement for bench/runtimes.ts, the same file under Node, Deno and Bun:
//   node --import tsx bench/runtimes/child.ts --dir=CHECKPOINT [--configs=fp32:1,fp32:2] [--rounds=2] [--prompt=128] [--steps=32]
//   deno run -A bench/runtimes/child.ts --dir=...        bun bench/runtimes/child.ts --dir=...
// Loads the built package (dist/index.js) and reads the checkpoint directory through from_pretrained(dir);
// progress on stderr, one RUNTIMES_BENCH {json} line on stdout.
import { BENCH_PREFIX, errText, measureAll, paramsFromArgs, type RuntimeBenchReport } from './measure.ts';

const g = globalThis as any;
const runtime = g.Deno ? 'deno' : g.Bun ? 'bun' : 'node';
const argv: string[] = g.Deno ? g.Deno.args : g.process.argv.slice(2);
const arg = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const version = runtime === 'deno' ? g.Deno.version.deno : runtime === 'bun' ? g.Bun.version : g.process.versions.node;
const exit = (code: number) => (g.Deno ? g.Deno.exit(code) : g.process.exit(code));
const log = (s: string) => console.error(`[${runtime}] ${s}`);

const dir = arg('dir');
const dist = arg('dist') ?? new URL('../../dist/index.js', import.meta.url).href;
const report: RuntimeBenchReport = { runtime, version, where: 'main thread', source: 'from_pretrained(directory)', rows: [] };
try {
  if (!dir) throw new Error('--dir=CHECKPOINT is required');
  const api = await import(dist);
  try { report.features = api.detectFeatures(); } catch (e) { report.features = { error: errText(e) }; }
  report.rows = await measureAll(api, () => dir, paramsFromArgs(arg), log);
} catch (e) {
  report.error = errText(e);
}
console.log(BENCH_PREFIX + JSON.stringify(report));
// thread pools are disposed with each model, but do not let a stray handle keep the process alive
exit(report.error ? 1 : 0);

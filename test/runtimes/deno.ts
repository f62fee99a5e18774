// Portability check on Deno: `deno run -A test/runtimes/deno.ts [--kernels=reference] [--threads=1,2]`.
// Loads the built package (dist/index.js) and the fixture model from its directory (Deno's node:fs), and
// runs lm_forward / lm_greedy with each thread count (threads > 1: Blob-URL module workers on one shared
// WebAssembly.Memory).
import { printReport, runChecks } from './check.ts';

declare const Deno: any;

const arg = (name: string) => Deno.args.find((a: string) => a.startsWith(`--${name}=`))?.split('=')[1];
const root = new URL('../../', import.meta.url);
const fixtures = Deno.env.get('GPT2WASM_FIXTURES') ?? new URL('../shared/fixtures', root).pathname;
const dist = Deno.env.get('GPT2WASM_DIST') ?? new URL('dist/index.js', root).href;

const api = await import(dist.startsWith('file:') ? dist : `file://${dist}`);
const report = await runChecks({
  api,
  platform: `deno ${Deno.version.deno}`,
  readFixture: (p) => Deno.readFile(`${fixtures}/${p}`),
  modelSource: (name) => `${fixtures}/models/${name}`,
  threads: (arg('threads') ?? '1,2').split(',').map(Number),
  kernels: arg('kernels') === 'reference' ? 'reference' : 'wasm',
});
Deno.exit(printReport(report));

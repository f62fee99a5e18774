// Portability check on Bun: `bun test/runtimes/bun.ts [--kernels=reference] [--threads=1,2]`.
// Loads the built package (dist/index.js) and the fixture model from its directory (Bun's node:fs), and
// runs lm_forward / lm_greedy with each thread count (threads > 1: Blob-URL module workers on one shared
// WebAssembly.Memory).
import { printReport, runChecks } from './check.ts';

declare const Bun: any;

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const root = new URL('../../', import.meta.url);
const fixtures = process.env.GPT2WASM_FIXTURES ?? new URL('../shared/fixtures', root).pathname;
const dist = process.env.GPT2WASM_DIST ?? new URL('dist/index.js', root).href;

const api = await import(dist.startsWith('file:') ? dist : `file://${dist}`);
const report = await runChecks({
  api,
  platform: `bun ${Bun.version}`,
  readFixture: async (p) => new Uint8Array(await Bun.file(`${fixtures}/${p}`).arrayBuffer()),
  modelSource: (name) => `${fixtures}/models/${name}`,
  threads: (arg('threads') ?? '1,2').split(',').map(Number),
  kernels: arg('kernels') === 'reference' ? 'reference' : 'wasm',
});
process.exit(printReport(report));

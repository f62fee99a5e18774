// Portability check on Node, of the built bundle (the unit tests run src/ through tsx instead):
//   node --import tsx test/runtimes/node.ts [--kernels=reference] [--threads=1,2]
// threads > 1: worker_threads started from the embedded worker source with eval.
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { printReport, runChecks } from './check.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const fixtures = process.env.GPT2WASM_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
const dist = process.env.GPT2WASM_DIST ?? join(root, 'dist', 'index.js');

const api = await import(pathToFileURL(dist).href);
const report = await runChecks({
  api,
  platform: `node ${process.versions.node} (dist bundle)`,
  readFixture: async (p) => new Uint8Array(await readFile(join(fixtures, p))),
  modelSource: (name) => join(fixtures, 'models', name),
  threads: (arg('threads') ?? '1,2').split(',').map(Number),
  kernels: arg('kernels') === 'reference' ? 'reference' : 'wasm',
});
process.exit(printReport(report));

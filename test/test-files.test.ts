// The test files themselves: uvu runs a file's tests at its test.run(), so a test written after that call is run
// with the next file's (or never, when the file runs alone) — it happened twice. Every test(...) must come before
// the file's test.run().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixtures.js';

test('every test file registers its tests before its one test.run()', () => {
  const dir = join(repoRoot, 'test');
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts'));
  assert.ok(files.length > 10);
  for (const f of files) {
    const s = readFileSync(join(dir, f), 'utf8');
    const runs = [...s.matchAll(/^test\.run\(\);?$/gm)];
    assert.is(runs.length, 1, `${f}: ${runs.length} test.run() calls`);
    const after = s.slice(runs[0].index! + runs[0][0].length);
    assert.not.match(after, /^test(\.(before|after)(\.each)?)?\(/m, `${f}: a test or hook after test.run()`);
  }
});

test.run();

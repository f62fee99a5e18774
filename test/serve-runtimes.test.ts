// `gpt2-wasm serve` shuts down gracefully on SIGTERM in every runtime the server is documented for (Node, Deno,
// Bun): a stream in flight finishes with [DONE], the process logs "stopped" and exits 0. Under Deno the first
// SIGTERM was taken for the second (Deno hands the signal being delivered to listeners added meanwhile) and the
// stream was cut with exit 130. Runtimes not installed are skipped unless GPT2WASM_REQUIRE_RUNTIMES=1 (CI).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { modelDir, repoRoot, requireRuntimes } from './helpers/fixtures.js';

function findBin(name: string): string | null {
  for (const dir of [join(repoRoot, 'node_modules', '.bin'), ...(process.env.PATH ?? '').split(delimiter)]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

const cli = join(repoRoot, 'dist', 'cli.js');
const deno = findBin('deno'), bun = findBin('bun');
const runtimes: { name: string; cmd: string | null; args: string[] }[] = [
  { name: 'node', cmd: process.execPath, args: [cli] },
  { name: 'deno', cmd: deno, args: ['run', '-A', cli] },
  { name: 'bun', cmd: bun, args: [cli] },
];

for (const rt of runtimes) {
  if (!rt.cmd && !requireRuntimes) { test.skip(`serve under ${rt.name}: not installed`, () => {}); continue; }
  test(`serve under ${rt.name}: SIGTERM lets the stream in flight finish, then exits 0`, async () => {
    assert.ok(rt.cmd, `${rt.name} is not installed (GPT2WASM_REQUIRE_RUNTIMES=1)`);
    const child = spawn(rt.cmd!, [...rt.args, 'serve', '--model', modelDir('gpt2-trained'), '--port', '0', '--threads', '1'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 90_000);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const poll = setInterval(() => {
          const m = /listening on (http:\/\/\S+)/.exec(stderr);
          if (m) { clearInterval(poll); resolve(m[1]); }
        }, 50);
        exited.then((code) => { clearInterval(poll); reject(new Error(`exited with ${code} before listening:\n${stderr}`)); });
      });
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 200, temperature: 0, n: 2, stream: true }),
      });
      assert.is(res.status, 200);
      const reader = res.body!.getReader();
      let body = '';
      const first = await reader.read();
      body += new TextDecoder().decode(first.value);
      child.kill('SIGTERM'); // with the stream under way
      for (;;) { const { done, value } = await reader.read(); if (done) break; body += new TextDecoder().decode(value); }
      assert.ok(body.trimEnd().endsWith('data: [DONE]'), `the stream was cut:\n…${body.slice(-300)}\n--- stderr\n${stderr}`);
      assert.is(await exited, 0, stderr);
      assert.match(stderr, /SIGTERM: shutting down/);
      assert.match(stderr, /\bstopped\b/);
      assert.not.match(stderr, /exiting now/);
    } finally {
      clearTimeout(kill);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
}

test.run();

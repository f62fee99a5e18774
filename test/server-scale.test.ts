// Scale-out behind a real load balancer: two `gpt2-wasm serve` replicas of the fixture model behind HAProxy
// (Debian's), health-checked on /health. Mid-load one replica gets SIGTERM: it fails /health for its drain
// delay while still serving, stops accepting, finishes what it has in flight and exits 0; HAProxy routes around
// it, and no request is lost (every one answers 200 with the text the model gives alone).
// Needs haproxy (scripts/setup-runtimes.mjs installs it as root); skipped with the reason when it is missing,
// unless GPT2WASM_REQUIRE_RUNTIMES=1 (CI), where that is a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir, repoRoot } from './helpers/fixtures.js';
import { post, until, within } from './helpers/server.js';

const HAPROXY = process.env.HAPROXY_PATH || '/usr/sbin/haproxy';
const haveHaproxy = spawnSync(HAPROXY, ['-v'], { encoding: 'utf8' }).status === 0;
const requireAll = process.env.GPT2WASM_REQUIRE_RUNTIMES === '1';
const DIR = modelDir('gpt2-tiny');

interface Proc { child: ChildProcess; err: string; exited: Promise<number | null> }

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  const p: Proc = { child, err: '', exited: new Promise((r) => child.on('exit', (code) => r(code))) };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d) => (p.err += d));
  return p;
}

/** A `gpt2-wasm serve` replica on a free port; resolves with its URL once it listens. */
async function replica(): Promise<Proc & { url: string; port: number }> {
  const script = `import { serve } from './src/server/index.ts'; await serve(process.argv.slice(1));`;
  const p = start(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--',
    '--model', DIR, '--port', '0', '--threads', '1', '--max-tokens', '64', '--max-concurrency', '4', '--queue-size', '64',
    '--drain-delay-ms', '1500', '--shutdown-timeout-ms', '20000', '--quiet']);
  await until(() => /listening on http/.test(p.err) || p.child.exitCode !== null, 60_000, 'a replica to listen');
  const url = /listening on (http:\/\/\S+)/.exec(p.err)?.[1];
  assert.ok(url, p.err);
  return Object.assign(p, { url: url!, port: Number(new URL(url!).port) });
}

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createNetServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => { const port = (s.address() as any).port; s.close(() => resolve(port)); });
});

/** HAProxy in front of the replicas: health checks on /health every 200 ms (two failures take a server out, well
 *  within the replicas' 1.5 s drain delay), and a request that found a closed connection is retried elsewhere. */
function haproxyConfig(port: number, servers: number[]): string {
  return `global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout check 3s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend fe
  bind 127.0.0.1:${port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /health
  http-check expect status 200
  default-server inter 200ms fall 2 rise 2
  http-response set-header x-served-by %s
${servers.map((p, i) => `  server r${i + 1} 127.0.0.1:${p} check`).join('\n')}
`;
}

test('two replicas behind HAProxy: SIGTERM on one mid-load drains it and loses no request', async () => {
  if (!haveHaproxy) {
    if (requireAll) assert.unreachable(`haproxy not found at ${HAPROXY} (GPT2WASM_REQUIRE_RUNTIMES=1; run scripts/setup-runtimes.mjs as root)`);
    console.log(`  skipped: haproxy not found at ${HAPROXY} (apt-get install -y haproxy, or node scripts/setup-runtimes.mjs as root)`);
    return;
  }
  const procs: Proc[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'gpt2wasm-haproxy-'));
  try {
    await within(150_000, (async () => {
      const [r1, r2] = await Promise.all([replica(), replica()]);
      procs.push(r1, r2);
      const port = await freePort();
      writeFileSync(join(tmp, 'haproxy.cfg'), haproxyConfig(port, [r1.port, r2.port]));
      const lb = start(HAPROXY, ['-db', '-f', join(tmp, 'haproxy.cfg')]);
      procs.push(lb);
      const url = `http://127.0.0.1:${port}`;
      // both servers up (rise 2 checks) before the load starts
      let ready = 0;
      for (let i = 0; i < 100 && ready < 4; i++) {
        const r = await fetch(`${url}/health`).catch(() => null);
        if (r?.status === 200) ready++;
        await r?.text();
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.ok(ready >= 4, `the balancer answers /health: ${lb.err}`);

      const prompts = ['Hello, my name is', 'The quick brown fox', 'In 1969 the first', 'Once upon a time'];
      const expected = new Map<string, string>();
      for (const prompt of prompts) expected.set(prompt, (await post(r2.url, { prompt, max_tokens: 24, temperature: 0 })).json.choices[0].text);

      let sent = 0, ok = 0, afterExit = 0, done = false, r1Exited = false;
      const lost: string[] = [];
      const servedBy = { before: new Map<string, number>(), after: new Map<string, number>() };
      let killedAt = -1;
      const worker = async (w: number) => {
        while (!done) {
          const prompt = prompts[(sent++ + w) % prompts.length];
          const wasExited = r1Exited;
          try {
            const r = await post(url, { prompt, max_tokens: 24, temperature: 0 });
            if (r.status !== 200 || r.json?.choices?.[0]?.text !== expected.get(prompt)) lost.push(`${r.status} ${r.text.slice(0, 200)}`);
            else {
              ok++;
              const by = r.headers.get('x-served-by') ?? '?';
              const m = killedAt < 0 ? servedBy.before : servedBy.after;
              m.set(by, (m.get(by) ?? 0) + 1);
            }
          } catch (e) { lost.push(`fetch failed: ${(e as Error).message}`); }
          if (wasExited) afterExit++;
          if (killedAt < 0 && ok >= 30) { killedAt = ok; r1.child.kill('SIGTERM'); r1.exited.then(() => { r1Exited = true; }); }
          if (afterExit >= 30) done = true;
        }
      };
      await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
      const code = await within(30_000, r1.exited, 'replica 1 to exit');
      console.log(`  failover: ${ok + lost.length} requests, ${lost.length} lost; before SIGTERM ${JSON.stringify(Object.fromEntries(servedBy.before))}, after ${JSON.stringify(Object.fromEntries(servedBy.after))}`);
      assert.equal(lost.slice(0, 3), [], `no request is lost (${lost.length} were)`);
      assert.is(code, 0, r1.err);
      assert.match(r1.err, /SIGTERM: shutting down/);
      assert.ok((servedBy.before.get('r1') ?? 0) > 0 && (servedBy.before.get('r2') ?? 0) > 0, 'both replicas served before the SIGTERM');
      assert.ok((servedBy.after.get('r2') ?? 0) >= 30, 'the other replica took the load');
      // the surviving replica still answers through the balancer
      assert.is((await post(url, { prompt: 'x', max_tokens: 2 })).status, 200);
    })(), 'failover run');
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();

// The edge handler on Deno, served the way Deno Deploy serves it:
//   deno run -A --sloppy-imports --import-map=test/runtimes/edge-import-map.json test/runtimes/edge-deno.ts [--kernels=reference]
// A Deno.serve static server on 127.0.0.1 plays the weights host (HEAD + Range, as a CDN); the handler from
// createFetchHandler({ modelUrl }) runs under a second Deno.serve; requests go over real HTTP. The import map
// points 'gpt2-wasm' at src/edge/handler.ts (sloppy imports resolve the source's .js specifiers to .ts), so
// examples/edge/deno-deploy/main.ts is loaded unchanged and checked too.
import { parseF32Safetensors, printReport, type CheckResult } from './check.ts';

declare const Deno: any;

const arg = (name: string) => Deno.args.find((a: string) => a.startsWith(`--${name}=`))?.split('=')[1];
const kernels = arg('kernels') === 'reference' ? 'reference' : 'wasm';
const root = new URL('../../', import.meta.url);
const fixtures = Deno.env.get('GPT2WASM_FIXTURES') ?? new URL('../shared/fixtures', root).pathname;
const results: CheckResult[] = [];
const check = async (name: string, fn: () => Promise<string | null>) => {
  const t0 = Date.now();
  try {
    const msg = await fn();
    results.push({ name, status: msg ? 'fail' : 'pass', threadsRequested: 1, threads: 1, ms: Date.now() - t0, ...(msg ? { message: msg } : {}) });
  } catch (e) {
    results.push({ name, status: 'fail', threadsRequested: 1, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
};

// 1. the weights host: fixture files with HEAD, Range and Content-Length, and a log of what was asked
const seen: { method: string; path: string; range: string | null }[] = [];
const weights = Deno.serve({ hostname: '127.0.0.1', port: 0, onListen() {} }, async (req: Request) => {
  const path = new URL(req.url).pathname;
  seen.push({ method: req.method, path, range: req.headers.get('range') });
  const m = /^\/models\/(gpt2-tiny)\/([\w.-]+)$/.exec(path);
  let bytes: Uint8Array<ArrayBuffer> | null = null;
  if (m) { try { bytes = await Deno.readFile(`${fixtures}/models/${m[1]}/${m[2]}`); } catch { /* absent: 404 */ } }
  if (!bytes) return new Response('not found', { status: 404 });
  const size = bytes.byteLength;
  const headers: Record<string, string> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get('range') ?? '');
  let body = bytes;
  let status = 200;
  if (r) {
    const start = Number(r[1]);
    const end = r[2] ? Math.min(Number(r[2]), size - 1) : size - 1;
    if (start >= size || end < start) return new Response(null, { status: 416, headers: { 'content-range': `bytes */${size}` } });
    body = bytes.subarray(start, end + 1);
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['content-length'] = String(body.byteLength);
  return new Response(req.method === 'HEAD' ? null : body, { status, headers });
});
const weightsUrl = `http://127.0.0.1:${weights.addr.port}`;

// 2. the handler under Deno.serve ('gpt2-wasm' through the import map; a variable keeps tsc from resolving it)
const pkg = 'gpt2-wasm';
const { createFetchHandler } = await import(pkg);
const handler = createFetchHandler({ modelUrl: `${weightsUrl}/models/gpt2-tiny/`, threads: 1, kernels, modelName: 'gpt2-tiny' });
const api = Deno.serve({ hostname: '127.0.0.1', port: 0, onListen() {} }, handler.fetch);
const apiUrl = `http://127.0.0.1:${api.addr.port}`;
const postJson = async (path: string, body: unknown) => {
  const res = await fetch(`${apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
};
const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(`${fixtures}/${p}`));

try {
  const fwd = await readJson('cases/lm_forward.json');
  const greedy = await readJson('cases/lm_greedy.json');
  const ref = parseF32Safetensors(await Deno.readFile(`${fixtures}/cases/${fwd.expected}`));

  await check('edge /v1/forward', async () => {
    const { status, json } = await postJson('/v1/forward', { input_ids: fwd.input_ids, top_k: 5 });
    if (status !== 200) return `HTTP ${status}: ${JSON.stringify(json)}`;
    const V = ref.logits.shape[1];
    const last = ref.logits.data.subarray((fwd.input_ids.length - 1) * V);
    const want = Array.from(last.keys()).sort((a, b) => last[b] - last[a] || a - b).slice(0, 5);
    const got = json.top_k[0].map((t: any) => t.token_id);
    if (JSON.stringify(got) !== JSON.stringify(want)) return `top-5 ids ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`;
    for (const t of json.top_k[0]) {
      if (!(Math.abs(t.logit - last[t.token_id]) <= fwd.tolerance.atol + fwd.tolerance.rtol * Math.abs(last[t.token_id]))) return `logit of ${t.token_id}: ${t.logit}, reference ${last[t.token_id]}`;
    }
    const gets = seen.filter((s) => s.path.endsWith('model.safetensors') && s.method === 'GET');
    if (!gets.length || gets.some((s) => !s.range)) return `weights were not read with Range requests: ${JSON.stringify(gets)}`;
    return null;
  });

  await check('edge /v1/completions', async () => {
    const { status, json } = await postJson('/v1/completions', { prompt: greedy.text, max_tokens: greedy.max_new_tokens });
    if (status !== 200) return `HTTP ${status}: ${JSON.stringify(json)}`;
    const want = greedy.expected_ids.slice(greedy.input_ids.length);
    const got = json.choices?.[0]?.token_ids;
    if (JSON.stringify(got) !== JSON.stringify(want)) return `ids ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`;
    if (typeof json.choices[0].text !== 'string') return 'no text';
    return null;
  });

  await check('edge model loaded once', async () => {
    const configReads = seen.filter((s) => s.path.endsWith('/config.json') && s.method === 'GET').length;
    const health = await (await fetch(`${apiUrl}/`)).json();
    if (configReads !== 1) return `config.json read ${configReads} times over several requests`;
    if (!health.loaded) return `GET / says ${JSON.stringify(health)}`;
    return null;
  });

  await check('examples/edge/deno-deploy/main.ts', async () => {
    Deno.env.set('GPT2_MODEL_URL', `${weightsUrl}/models/gpt2-tiny/`);
    const examplePath = '../../examples/edge/deno-deploy/main.ts';
    const example = (await import(examplePath)).default;
    if (typeof example?.fetch !== 'function') return 'the example has no default export with fetch()';
    const res = await example.fetch(new Request('http://example/'));
    const j = await res.json();
    if (res.status !== 200 || j.ok !== true || j.model !== `${weightsUrl}/models/gpt2-tiny/`) return `GET / → ${res.status} ${JSON.stringify(j)}`;
    await example.dispose();
    return null;
  });
} finally {
  await handler.dispose();
  await api.shutdown();
  await weights.shutdown();
}
Deno.exit(printReport({ platform: `deno ${Deno.version.deno} edge (Deno.serve)`, kernels, results }));

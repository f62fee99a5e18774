#!/usr/bin/env node
// A static server for this example, with the headers a threaded gpt2-wasm page needs:
//   Cross-Origin-Opener-Policy: same-origin + Cross-Origin-Embedder-Policy: require-corp → crossOriginIsolated
//   → SharedArrayBuffer → worker threads (without them the model runs on one thread).
// It serves this folder at /, the package's dist/ at /gpt2-wasm/, and with --model=DIR a local model folder at
// /model/ (with HEAD and Range support, which gpt2-wasm reads weights with), named in /config.json for the page.
//   node examples/browser/serve.mjs [--port=8080] [--model=path/to/gpt2]     (after npm run build)
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8' };
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

/** A file under `base` for a URL path, or null when it escapes `base` or is not a file. */
function fileUnder(base, rel) {
  const p = resolve(base, '.' + rel);
  if (p !== base && !p.startsWith(base + sep)) return null;
  return existsSync(p) && statSync(p).isFile() ? p : null;
}

/** Answer with a file, honouring a single `Range: bytes=a-b` (weights are read in ranges). */
function sendFile(req, res, file) {
  const st = statSync(file);
  const headers = { ...ISOLATION, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`, 'cache-control': 'no-cache' };
  let start = 0;
  let end = st.size - 1;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    if (start >= st.size || end < start) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${st.size}` });
      return res.end();
    }
    headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = String(end - start + 1);
  res.writeHead(m ? 206 : 200, headers);
  if (req.method === 'HEAD') return res.end();
  createReadStream(file, { start, end }).pipe(res);
}

/**
 * Start the server. `model` is a local model folder (served at /model/) or undefined (the page then loads GPT-2
 * from the Hub). Returns { url, requests (every path asked for, in order), close() }.
 */
export async function startExampleServer({ port = 8080, host = '127.0.0.1', model } = {}) {
  const dist = resolve(here, '..', '..', 'dist');
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    let file = null;
    if (path === '/config.json') {
      res.writeHead(200, { ...ISOLATION, 'content-type': 'application/json' });
      return res.end(JSON.stringify(model ? { model: '/model/' } : {}));
    }
    if (path.startsWith('/gpt2-wasm/')) file = fileUnder(dist, path.slice('/gpt2-wasm'.length));
    else if (path.startsWith('/model/') && model) file = fileUnder(resolve(model), path.slice('/model'.length));
    else file = fileUnder(here, path === '/' ? '/index.html' : path);
    if (!file) {
      res.writeHead(404, { ...ISOLATION, 'content-type': 'text/plain' });
      return res.end(`not found: ${path}`);
    }
    sendFile(req, res, file);
  });
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, ok); });
  const addr = server.address();
  return {
    url: `http://${host}:${addr.port}`,
    requests,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=').slice(1).join('=');
  if (!existsSync(join(here, '..', '..', 'dist', 'index.browser.js'))) console.warn('dist/index.browser.js is missing: run npm run build first');
  startExampleServer({ port: Number(arg('port') ?? 8080), model: arg('model') }).then(
    (s) => console.log(`gpt2-wasm example at ${s.url}/ (model: ${arg('model') ?? 'GPT-2 from the Hugging Face Hub'})`),
    (e) => { console.error(e.message); process.exit(1); },
  );
}

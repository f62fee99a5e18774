// Runs in the Chromium page served by test/runtimes/browser.ts (transpiled on the fly). Imports the built
// package from /dist/index.js, reads the fixture model over HTTP with urlSource (HEAD + Range requests), and
// hands the report to the driver through the exposed `__gpt2wasmDone` binding.
import { runChecks, type RuntimeReport } from './check.ts';

const w = globalThis as any;
const params = new URLSearchParams(location.search);
const done = (r: RuntimeReport | { error: string }) => w.__gpt2wasmDone(JSON.stringify(r));

try {
  const distUrl = '/dist/index.js';
  const api = await import(distUrl);
  // urlSource is part of the public API once src/index.ts exports it; until then the server offers an
  // esbuild bundle of src/io/source.ts at /urlsource.js.
  let urlSource = api.urlSource;
  let sourceFrom = 'dist';
  if (typeof urlSource !== 'function') {
    const fallbackUrl = '/urlsource.js';
    urlSource = (await import(fallbackUrl)).urlSource;
    sourceFrom = 'src/io/source.ts (dist does not export urlSource)';
  }
  const isolated = w.crossOriginIsolated === true;
  const report = await runChecks({
    api,
    platform: `chromium ${isolated ? 'cross-origin isolated' : 'not isolated'}`,
    readFixture: async (p) => {
      const res = await fetch(`/fixtures/${p}`);
      if (!res.ok) throw new Error(`/fixtures/${p}: HTTP ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
    // The wrapper works around src/io/source.ts calling the stored global fetch as a method of the source
    // (`this.fetchFn(...)`), which browsers reject with "Illegal invocation"; GPT2WASM_RAW_FETCH=1 checks the fix.
    modelSource: (name) => urlSource(new URL(`/fixtures/models/${name}/`, location.href).href,
      params.get('rawfetch') === '1' ? {} : { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init) }),
    threads: (params.get('threads') ?? '1,2').split(',').map(Number),
    kernels: params.get('kernels') === 'reference' ? 'reference' : 'wasm',
    // without cross-origin isolation there is no SharedArrayBuffer: the backend falls back to one thread
    expectThreads: (n) => (isolated ? n : 1),
  });
  (report as any).urlSource = sourceFrom;
  (report as any).userAgent = navigator.userAgent;
  done(report);
} catch (e) {
  done({ error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) });
}

// The Chromium checks, run both on the page (browser-page.ts) and in a module Web Worker it starts
// (browser-worker.ts): the built package from /dist/index.js, the fixture model read over HTTP with urlSource.
// On the page the pool's caller cannot block (Atomics.wait is not allowed on a window's main thread) and spins;
// in a worker it blocks. Without cross-origin isolation there is no shared memory and one thread is expected.
import { runChecks, type RuntimeReport } from './check.ts';

export interface BrowserParams { kernels: 'wasm' | 'reference'; threads: number[]; rawFetch: boolean }

export function paramsFrom(search: string): BrowserParams {
  const p = new URLSearchParams(search);
  return {
    kernels: p.get('kernels') === 'reference' ? 'reference' : 'wasm',
    threads: (p.get('threads') ?? '1,2').split(',').map(Number),
    rawFetch: p.get('rawfetch') !== '0',
  };
}

export async function browserChecks(where: 'page' | 'worker', params: BrowserParams): Promise<RuntimeReport> {
  const distUrl = '/dist/index.js';
  const api = await import(distUrl);
  const urlSource = api.urlSource;
  if (typeof urlSource !== 'function') throw new Error('dist/index.js does not export urlSource');
  const isolated = (globalThis as any).crossOriginIsolated === true;
  const report = await runChecks({
    api,
    platform: `chromium ${isolated ? 'cross-origin isolated' : 'not isolated'} (${where})`,
    readFixture: async (p) => {
      const res = await fetch(`/fixtures/${p}`);
      if (!res.ok) throw new Error(`/fixtures/${p}: HTTP ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
    // rawfetch=1 (the default) reads with the library's own default fetch, unwrapped (browsers reject a global
    // fetch called as a method of another object: "Illegal invocation"); rawfetch=0 passes a wrapper instead.
    modelSource: (name) => urlSource(new URL(`/fixtures/models/${name}/`, location.href).href,
      params.rawFetch ? {} : { fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init) }),
    threads: params.threads,
    kernels: params.kernels,
    expectThreads: (n) => (isolated ? n : 1),
  });
  return report;
}

// The Chromium side of bench/runtimes.ts (served transpiled by bench/runtimes/browser.ts). On the page it either
// measures right there (where=page: the pool's caller spins, a window cannot Atomics.wait) or starts itself again
// as a module Web Worker (where=worker, the default: the caller blocks, pool workers are nested workers) and
// relays that report. The model is read over HTTP with urlSource from /model/. Progress goes to console.log (the
// driver echoes it); the report goes back through the `__runtimesBenchDone` binding as JSON text.
import { errText, measureAll, paramsFromArgs, type RuntimeBenchReport } from './measure.ts';

const scope = globalThis as any;
const isWindow = typeof scope.document !== 'undefined';
const q = new URLSearchParams(location.search);
const where = q.get('where') === 'page' ? 'page' : 'worker';

async function measureHere(whereLabel: string, log: (s: string) => void): Promise<RuntimeBenchReport> {
  const ua = String(scope.navigator?.userAgent ?? '');
  const report: RuntimeBenchReport = {
    runtime: 'chromium', version: /Chrome\/([\d.]+)/.exec(ua)?.[1] ?? ua, where: whereLabel,
    crossOriginIsolated: scope.crossOriginIsolated === true, source: 'urlSource over HTTP (127.0.0.1, Range requests)', rows: [],
  };
  try {
    const api = await import('/dist/index.js' as string);
    try { report.features = api.detectFeatures(); } catch (e) { report.features = { error: errText(e) }; }
    const base = new URL('/model/', location.href).href;
    // wrapped fetch: older builds called the stored fetch as a method of the source ("Illegal invocation")
    const source = () => api.urlSource(base, { fetch: (i: RequestInfo | URL, init?: RequestInit) => fetch(i, init) });
    report.rows = await measureAll(api, source, paramsFromArgs((n) => q.get(n) ?? undefined), log);
  } catch (e) {
    report.error = errText(e);
  }
  return report;
}

function inWorker(): Promise<RuntimeBenchReport> {
  return new Promise((done) => {
    const w = new Worker(`${new URL(import.meta.url).pathname}${location.search}`, { type: 'module' });
    const fail = (msg: string): RuntimeBenchReport => ({ runtime: 'chromium', version: '', where: 'web worker', source: '', rows: [], error: msg });
    w.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.log) { console.log(m.log); return; }
      done(m.report);
      w.terminate();
    };
    w.onerror = (e) => { done(fail(`worker: ${e.message || 'failed to start'}`)); w.terminate(); };
  });
}

if (isWindow) {
  const report = where === 'page'
    ? await measureHere('page (main thread)', (s) => console.log(s))
    : await inWorker();
  scope.__runtimesBenchDone(JSON.stringify(report));
} else {
  const report = await measureHere('web worker', (s) => scope.postMessage(JSON.stringify({ log: s })));
  scope.postMessage(JSON.stringify({ report }));
}

// Runs in the Chromium page served by test/runtimes/browser.ts (transpiled on the fly): the checks on the page
// itself, then in a module Web Worker; hands both reports to the driver through the `__gpt2wasmDone` binding.
import { browserChecks, paramsFrom } from './browser-common.ts';
import type { RuntimeReport } from './check.ts';

type Outcome = RuntimeReport | { error: string };
const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e));

function inWorker(): Promise<Outcome> {
  return new Promise((done) => {
    const w = new Worker(`/test/runtimes/browser-worker.ts${location.search}`, { type: 'module' });
    w.onmessage = (e) => { done(JSON.parse(e.data)); w.terminate(); };
    w.onerror = (e) => { done({ error: `worker: ${e.message || 'failed to start'}` }); w.terminate(); };
  });
}

const outcomes: Outcome[] = [];
try {
  outcomes.push(await browserChecks('page', paramsFrom(location.search)));
} catch (e) {
  outcomes.push({ error: `page: ${errText(e)}` });
}
outcomes.push(await inWorker());
(globalThis as any).__gpt2wasmDone(JSON.stringify(outcomes));
